# meshhook_target_options(<target>): warnings, sanitizers and coverage for one of our targets.
# Set per target so that including this project never changes a parent's flags.
function(meshhook_target_options target)
  # Designated initializers that leave fields at their defaults are idiomatic C++20.
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wno-missing-field-initializers)
  if(MESHHOOK_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
  if(MESHHOOK_SANITIZE)
    target_compile_options(${target} PRIVATE -fsanitize=${MESHHOOK_SANITIZE} -fno-omit-frame-pointer)
    target_link_options(${target} PRIVATE -fsanitize=${MESHHOOK_SANITIZE})
  endif()
  if(MESHHOOK_COVERAGE)
    # Atomic counters: the daemon is multi-threaded, and racing counters go negative.
    target_compile_options(${target} PRIVATE --coverage -fprofile-update=atomic -O0)
    target_link_options(${target} PRIVATE --coverage)
  endif()
endfunction()
