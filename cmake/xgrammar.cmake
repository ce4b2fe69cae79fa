# xgrammar: builds the C++ core of the sdist that scripts/setup.sh unpacked into third_party/, at
# configure time and once per compiler (the library lands in third_party/xgrammar-<ver>/dspark-<key>/,
# shared by the Release and the sanitizer build folders), then imports it as xgrammar::xgrammar.
# The library itself is not instrumented by the sanitizers; dspark's own code around it is.
set(DSPARK_XGRAMMAR_VERSION 0.2.9)
set(DSPARK_XGRAMMAR_DIR ${PROJECT_SOURCE_DIR}/third_party/xgrammar-${DSPARK_XGRAMMAR_VERSION}
    CACHE PATH "The unpacked xgrammar sdist (scripts/setup.sh puts it there)")
if(NOT EXISTS ${DSPARK_XGRAMMAR_DIR}/cpp/grammar_matcher.cc)
  message(FATAL_ERROR "xgrammar ${DSPARK_XGRAMMAR_VERSION} is missing from "
                      "${DSPARK_XGRAMMAR_DIR}: run scripts/setup.sh")
endif()

# The key names what the library depends on: compiler, its version, this recipe.
set(recipe_hash)
foreach(f CMakeLists.txt dspark_log.cc dspark_log.h)
  file(SHA256 ${CMAKE_CURRENT_LIST_DIR}/xgrammar/${f} h)
  string(APPEND recipe_hash ${h})
endforeach()
string(SHA256 key "${CMAKE_CXX_COMPILER}|${CMAKE_CXX_COMPILER_VERSION}|${recipe_hash}")
string(SUBSTRING ${key} 0 12 key)
set(xg_out ${DSPARK_XGRAMMAR_DIR}/dspark-${key})
set(xg_lib ${xg_out}/install/lib/libxgrammar.a)

# Two build folders configuring at once take turns; the second finds the library built.
file(LOCK ${DSPARK_XGRAMMAR_DIR}/.dspark-build.lock GUARD FILE TIMEOUT 3600)
if(NOT EXISTS ${xg_out}/done)
  message(STATUS "xgrammar: building its C++ core once into ${xg_out} (a few minutes)")
  cmake_host_system_information(RESULT ncpu QUERY NUMBER_OF_LOGICAL_CORES)
  set(gen_args)
  if(CMAKE_GENERATOR MATCHES "Ninja")
    set(gen_args -G Ninja)
  endif()
  execute_process(
    COMMAND ${CMAKE_COMMAND} -S ${CMAKE_CURRENT_LIST_DIR}/xgrammar -B ${xg_out}/build ${gen_args}
            -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER=${CMAKE_CXX_COMPILER}
            -DXGRAMMAR_SOURCE_DIR=${DSPARK_XGRAMMAR_DIR} -DCMAKE_INSTALL_PREFIX=${xg_out}/install
    COMMAND_ERROR_IS_FATAL ANY OUTPUT_QUIET)
  execute_process(
    COMMAND ${CMAKE_COMMAND} --build ${xg_out}/build -j${ncpu} --target install
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "xgrammar: the build failed:\n${out}")
  endif()
  file(TOUCH ${xg_out}/done)
endif()
file(LOCK ${DSPARK_XGRAMMAR_DIR}/.dspark-build.lock RELEASE)

add_library(xgrammar::xgrammar STATIC IMPORTED GLOBAL)
set_target_properties(xgrammar::xgrammar PROPERTIES IMPORTED_LOCATION ${xg_lib})
# SYSTEM: its headers' warnings are not ours either.
target_include_directories(xgrammar::xgrammar SYSTEM INTERFACE ${xg_out}/install/include)
target_compile_definitions(xgrammar::xgrammar INTERFACE XGRAMMAR_ENABLE_CPPTRACE=0
                           XGRAMMAR_ENABLE_INTERNAL_CHECK=0)
target_link_libraries(xgrammar::xgrammar INTERFACE Threads::Threads)
