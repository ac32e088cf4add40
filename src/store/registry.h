#pragma once
// Stores register by name; `minik apiserver --store=NAME` picks one.

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "store/store.h"

namespace minik::store {

using Factory = std::function<std::unique_ptr<Store>(const StoreOptions&)>;

// Registers a store implementation; a name cannot be registered twice.
void Register(const std::string& name, Factory factory);
// Creates the named store; throws minik::Error listing the known names when unknown.
std::unique_ptr<Store> Create(const std::string& name, const StoreOptions& opts);
std::vector<std::string> Names();

// Called once at start-up to register the built-in stores (no static-init tricks).
void RegisterBuiltins();

}  // namespace minik::store
