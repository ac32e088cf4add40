# minik_embed(TARGET NAME FILES...): compiles data files into TARGET as
# `minik::embedded::NAME` (a map from the file's path relative to the
# source tree to its bytes), so manifests and tables are data, not C++ strings.
function(minik_embed target name)
  set(out ${CMAKE_CURRENT_BINARY_DIR}/embed_${name}.cc)
  set(files)
  foreach(f ${ARGN})
    get_filename_component(abs ${f} ABSOLUTE)
    list(APPEND files ${abs})
  endforeach()
  add_custom_command(
    OUTPUT ${out}
    COMMAND ${CMAKE_COMMAND} -DOUT=${out} -DNAME=${name} -DROOT=${PROJECT_SOURCE_DIR}
            "-DFILES=${files}" -P ${PROJECT_SOURCE_DIR}/cmake/EmbedGen.cmake
    DEPENDS ${files} ${PROJECT_SOURCE_DIR}/cmake/EmbedGen.cmake
    COMMENT "Embedding ${name}")
  target_sources(${target} PRIVATE ${out})
endfunction()
