# Checks source_sizes.cmake itself on files it writes into WORK (a scratch folder): exactly
# LIMIT lines pass, with or without a final newline; LIMIT lines and one more without its newline
# fail, as do LIMIT + 1 terminated lines. Run as
#   cmake -DSCRIPT=<source_sizes.cmake> -DWORK=<scratch folder> -P source_sizes_selftest.cmake
if(NOT DEFINED SCRIPT OR NOT DEFINED WORK)
  message(FATAL_ERROR "source_sizes_selftest.cmake: pass -DSCRIPT=<script> -DWORK=<folder>")
endif()
set(limit 5)
# Runs the script on a folder holding one file `content`; sets `rc` to its exit status.
function(check_one name content expect_ok)
  set(dir "${WORK}/${name}")
  file(REMOVE_RECURSE "${dir}")
  file(MAKE_DIRECTORY "${dir}")
  file(WRITE "${dir}/file.cpp" "${content}")
  execute_process(COMMAND ${CMAKE_COMMAND} -DDIR=${dir} -DLIMIT=${limit} -P ${SCRIPT}
                  RESULT_VARIABLE rc OUTPUT_QUIET ERROR_VARIABLE err)
  if(expect_ok AND NOT rc EQUAL 0)
    message(SEND_ERROR "${name}: expected to pass, failed: ${err}")
  elseif(NOT expect_ok AND rc EQUAL 0)
    message(SEND_ERROR "${name}: expected to fail (over ${limit} lines), passed")
  endif()
  file(REMOVE_RECURSE "${dir}")
endfunction()
check_one(at_limit "1\n2\n3\n4\n5\n" TRUE)
check_one(at_limit_unterminated "1\n2\n3\n4\n5" TRUE)
check_one(over_limit "1\n2\n3\n4\n5\n6\n" FALSE)
check_one(over_limit_unterminated "1\n2\n3\n4\n5\n6" FALSE)
check_one(empty "" TRUE)
