# Compiles deprecated_names.c (calls of every older name of the C API) and fails unless the
# compiler warns about each call with the text shmlink.h promises; in particular the warning on
# shmlink_interface_destroy says that close now frees the handle and names
# shmlink_interface_disconnect. Usable with any GCC-compatible C compiler:
#   cmake -DCC=<compiler> -DSRC=<deprecated_names.c> -DINCLUDES="<dir>;<dir>" -P capi_deprecated_names.cmake
if(NOT DEFINED CC OR NOT DEFINED SRC OR NOT DEFINED INCLUDES)
  message(FATAL_ERROR "capi_deprecated_names.cmake: pass -DCC=, -DSRC= and -DINCLUDES=")
endif()
set(flags -std=c11 -fsyntax-only -fdiagnostics-color=never -Wall -Wextra -Wdeprecated-declarations)
foreach(dir IN LISTS INCLUDES)
  list(APPEND flags -I${dir})
endforeach()
execute_process(COMMAND ${CMAKE_COMMAND} -E env LC_ALL=C ${CC} ${flags} ${SRC} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
set(text "${out}${err}")
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "compiling ${SRC} failed (${rc}):\n${text}")
endif()
# name -> a regular expression its warning must match
set(expected
    "'shmlink_stream_remove' is deprecated: use shmlink_stream_destroy"
    "'shmlink_queue_remove' is deprecated: use shmlink_queue_destroy"
    "'shmlink_interface_new' is deprecated: use shmlink_interface_create"
    "'shmlink_interface_open' is deprecated: use shmlink_interface_connect"
    "'shmlink_interface_is_open' is deprecated: use shmlink_interface_is_connected"
    "'shmlink_interface_destroy' is deprecated: use shmlink_interface_close, which now frees the handle[^\n]*twice[^\n]*shmlink_interface_disconnect")
set(missing "")
foreach(re IN LISTS expected)
  if(NOT text MATCHES "${re}")
    string(APPEND missing "\n  no warning matching: ${re}")
  endif()
endforeach()
if(missing)
  message(FATAL_ERROR "compiling ${SRC}:${missing}\ncompiler output:\n${text}")
endif()
message(STATUS "every older name of the C API warns as shmlink.h says")
