// The `memory` store: the shared MVCC state machine with no journal. Nothing
// survives the process; for tests and throwaway clusters.

#include "store/mvcc.h"

namespace minik::store {

std::unique_ptr<Store> NewMemoryStore(const StoreOptions& opts) {
  return std::make_unique<MvccStore>(nullptr, opts);
}

}  // namespace minik::store
