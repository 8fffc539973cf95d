# Tests reach the CLI's code only through libraries with their own include directories (issue 20,
# item 9): no test source includes a file of tools/ by path, and no test target compiles a source
# of tools/ or adds a tools/ folder to its include path. Run as `cmake -DROOT=<source dir> -P`.
file(GLOB_RECURSE files LIST_DIRECTORIES false
  ${ROOT}/tests/*.cpp ${ROOT}/tests/*.hpp ${ROOT}/tests/*.h ${ROOT}/tests/*CMakeLists.txt)
set(found "")
foreach(f IN LISTS files)
  file(STRINGS ${f} lines REGEX "#include[ \t]*[\"<]([^\">]*/)?tools/|PROJECT_SOURCE_DIR}/tools/")
  foreach(line IN LISTS lines)
    string(APPEND found "\n  ${f}: ${line}")
  endforeach()
endforeach()
if(found)
  message(FATAL_ERROR "tests reach into tools/ by path (link shmlink_tool_support instead):${found}")
endif()
message(STATUS "no test reaches into tools/ by path (${ROOT}/tests)")
