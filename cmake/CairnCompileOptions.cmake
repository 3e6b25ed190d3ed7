# Warnings, warnings-as-errors and sanitizers for Cairn's own targets.
add_library(cairn_compile_options INTERFACE)
target_compile_options(cairn_compile_options INTERFACE
  $<$<COMPILE_LANGUAGE:CXX,C>:-Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wno-sign-conversion>)
if(CAIRN_WARNINGS_AS_ERRORS)
  target_compile_options(cairn_compile_options INTERFACE $<$<COMPILE_LANGUAGE:CXX,C>:-Werror>)
endif()

if(CAIRN_SANITIZE STREQUAL "address")
  set(_san -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
elseif(CAIRN_SANITIZE STREQUAL "thread")
  set(_san -fsanitize=thread -fno-omit-frame-pointer)
elseif(NOT CAIRN_SANITIZE STREQUAL "")
  message(FATAL_ERROR "CAIRN_SANITIZE must be address, thread or empty, not '${CAIRN_SANITIZE}'")
endif()
if(_san)
  # Applied to everything this project builds, so that every object is instrumented.
  add_compile_options(${_san})
  add_link_options(${_san})
endif()
