# Extracts every C++ code block (a fence ```cpp, also ```c++ / ```cxx) of the given
# Markdown pages into ONE translation unit (docs/building.md, "Code blocks in the
# documentation"):
#
#   - the preprocessor lines at the top of a block (its #include lines and any #define
#     before them) and every later #include line are hoisted to the top of the file;
#   - the rest of block j of page P is wrapped in `namespace doc_<P>_<j> { ... }`, where
#     <P> is the page's file name without .md, lower case, other characters than
#     letters and digits as `_` (README.md block 1: doc_readme_1);
#   - `int main(` becomes `auto run(` (auto: a main without a return statement returns
#     void, not an int it never returns);
#   - `#line` directives point every line back at the page, so a compile error or a
#     sanitizer report names the page and its line;
#   - a generated main() runs the blocks named on its command line (all without
#     arguments), each in a fresh scratch directory, and fails on a non-zero return,
#     a non-zero exit or an uncaught exception, naming page and block.
#
# Fences in other languages (```sh, ```python, ...) are skipped, and a ```cpp line
# inside them is not a block. A block without `int main(` becomes an #error naming it.
#
# Use from CMake:
#   include(extract_doc_snippets.cmake)
#   colora_extract_doc_snippets(ROOT <dir> OUTPUT <file.cpp> PAGES <relative paths>...)
# which sets COLORA_DOC_SNIPPET_IDS (readme_1;nn_3;...) and, per id,
# COLORA_DOC_SNIPPET_<id>_WHERE ("docs/nn.md block 3 (line 192)") in the caller's scope.
# The output is rewritten only when its content changes.
# Or as a script: cmake -DROOT=<dir> -DOUTPUT=<file.cpp> -DPAGES="README.md;docs/nn.md" -P extract_doc_snippets.cmake

# The end of a C++ block (a macro: it works in the variables of colora_extract_doc_snippets).
macro(_colora_doc_snippet_end)
  string(APPEND _bodies "\n// ${_where}\nnamespace doc_${_id} {\n")
  if(NOT _has_main)
    string(APPEND _bodies "#line ${_fence_line} \"${_page}\"\n#error \"${_where} has no int main(): "
           "every C++ block of the documentation is a complete program (docs/building.md)\"\n")
  endif()
  string(APPEND _bodies "${_block_text}}  // namespace doc_${_id}\n")
  string(APPEND _table "    {\"${_id}\", \"${_where}\", [] { return result(&doc_${_id}::run); }},\n")
  list(APPEND _ids "${_id}")
  set(COLORA_DOC_SNIPPET_${_id}_WHERE "${_where}" PARENT_SCOPE)
endmacro()

function(colora_extract_doc_snippets)
  cmake_parse_arguments(ARG "" "ROOT;OUTPUT" "PAGES" ${ARGN})
  # CMake lists split at ';' (except inside [ ]) and treat '\' as an escape: protect
  # those characters while the text is a list of lines, put them back on output.
  string(ASCII 1 _semi)
  string(ASCII 2 _open)
  string(ASCII 3 _close)
  string(ASCII 4 _bslash)

  set(_includes "")
  set(_bodies "")
  set(_table "")
  set(_ids "")
  foreach(_page IN LISTS ARG_PAGES)
    get_filename_component(_stem "${_page}" NAME_WE)
    string(TOLOWER "${_stem}" _stem)
    string(MAKE_C_IDENTIFIER "${_stem}" _stem)
    file(READ "${ARG_ROOT}/${_page}" _text)
    string(REPLACE "\r" "" _text "${_text}")
    string(REPLACE "\\" "${_bslash}" _text "${_text}")
    string(REPLACE ";" "${_semi}" _text "${_text}")
    string(REPLACE "[" "${_open}" _text "${_text}")
    string(REPLACE "]" "${_close}" _text "${_text}")
    string(REPLACE "\n" ";" _lines "${_text}")

    set(_state "text")  # text | cpp | other (a fence of another language)
    set(_lineno 0)
    set(_block 0)
    foreach(_line IN LISTS _lines)
      math(EXPR _lineno "${_lineno} + 1")
      if(_state STREQUAL "text")
        # An opening fence? (A backtick fence's info string has no backtick, CommonMark: a
        # line starting with inline code, ```` ```cpp ````, is not one.)
        if(_line MATCHES "^( ? ? ?)(```+|~~~+)(.*)$")
          set(_indent "${CMAKE_MATCH_1}")
          set(_fence "${CMAKE_MATCH_2}")
          set(_info "${CMAKE_MATCH_3}")
          string(FIND "${_info}" "`" _backtick)
          if(_fence MATCHES "^`" AND _backtick GREATER -1)
            continue()
          endif()
          string(STRIP "${_info}" _info)
          string(REGEX MATCH "^[^ \t]*" _lang "${_info}")
          string(TOLOWER "${_lang}" _lang)
          string(LENGTH "${_indent}" _indent_len)
          set(_fence_line ${_lineno})
          if(_lang MATCHES "^(cpp|c\\+\\+|cxx)$")
            set(_state "cpp")
            math(EXPR _block "${_block} + 1")
            set(_id "${_stem}_${_block}")
            set(_where "${_page} block ${_block} (line ${_lineno})")
            set(_preamble TRUE)
            set(_has_main FALSE)
            math(EXPR _first "${_lineno} + 1")
            set(_block_text "#line ${_first} \"${_page}\"\n")
          else()
            set(_state "other")
          endif()
        endif()
        continue()
      endif()

      # Inside a fence: is this line its closing fence (same character, at least as long)?
      if(_line MATCHES "^ ? ? ?(```+|~~~+)[ \t]*$")
        set(_close_fence "${CMAKE_MATCH_1}")
        string(SUBSTRING "${_close_fence}" 0 1 _c1)
        string(SUBSTRING "${_fence}" 0 1 _c0)
        string(LENGTH "${_close_fence}" _l1)
        string(LENGTH "${_fence}" _l0)
        if(_c1 STREQUAL _c0 AND NOT _l1 LESS _l0)
          if(_state STREQUAL "cpp")
            _colora_doc_snippet_end()
          endif()
          set(_state "text")
          continue()
        endif()
      endif()
      if(_state STREQUAL "other")
        continue()
      endif()

      # A line of a C++ block: drop the fence's indentation.
      if(_indent_len GREATER 0)
        foreach(_i RANGE 1 ${_indent_len})
          if(_line MATCHES "^ ")
            string(SUBSTRING "${_line}" 1 -1 _line)
          endif()
        endforeach()
      endif()
      set(_hoist FALSE)
      if(_line MATCHES "^[ \t]*#")
        if(_preamble OR _line MATCHES "^[ \t]*#[ \t]*include")
          set(_hoist TRUE)
        endif()
      elseif(NOT _line MATCHES "^[ \t]*(//.*)?$")
        set(_preamble FALSE)
      endif()
      if(_hoist)
        string(APPEND _includes "#line ${_lineno} \"${_page}\"\n${_line}\n")
        string(APPEND _block_text "\n")  # keeps the #line numbering of the block
      else()
        if(_line MATCHES "int[ \t]+main[ \t]*\\(")
          set(_has_main TRUE)
          string(REGEX REPLACE "int[ \t]+main[ \t]*\\(" "auto run(" _line "${_line}")
        endif()
        string(APPEND _block_text "${_line}\n")
      endif()
    endforeach()
    if(NOT _state STREQUAL "text")
      # As Markdown does: the block runs to the end of the page.
      message(WARNING "colora: ${ARG_ROOT}/${_page}:${_fence_line}: the code fence opened here is never closed")
      if(_state STREQUAL "cpp")
        _colora_doc_snippet_end()
      endif()
    endif()
  endforeach()

  string(REPLACE ";" ", " _page_names "${ARG_PAGES}")
  string(CONCAT _out "// Generated by tests/doc_snippets/extract_doc_snippets.cmake from the ```cpp blocks of\n"
           "// ${_page_names}.\n// Do not edit: edit the page (docs/building.md, \"Code blocks in the documentation\").\n\n"
           "// The blocks' own #include lines, in page order.\n${_includes}\n"
           "// The blocks, one namespace each.\n${_bodies}\n")
  string(REGEX MATCHALL "\n" _newlines "${_out}")
  list(LENGTH _newlines _n)
  math(EXPR _n "${_n} + 2")
  string(APPEND _out "#line ${_n} \"${ARG_OUTPUT}\"\n")
  # The runner's own headers come after the blocks, so a block that uses std::cout
  # without including <iostream> is not rescued by them (only by another block's).
  string(APPEND _out [=[
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <iostream>
#include <string>

namespace doc_snippets_runner {

int result(void (*run)()) {
  run();
  return 0;
}
int result(int (*run)()) { return run(); }

struct Block {
  const char* id;
  const char* where;
  int (*run)();
};

}  // namespace doc_snippets_runner

namespace {

using doc_snippets_runner::Block;
using doc_snippets_runner::result;

const Block blocks[] = {
]=] "${_table}" [=[
};

}  // namespace

// colora_doc_snippets [ID...]: runs the blocks with these ids (all without arguments),
// each in a fresh directory ./doc_scratch_<id> (removed when the block passes).
int main(int argc, char** argv) {
  namespace fs = std::filesystem;
  const fs::path base = fs::current_path();
  int ran = 0, failed = 0;
  for (const Block& b : blocks) {
    bool selected = argc == 1;
    for (int a = 1; a < argc; ++a) selected = selected || b.id == std::string(argv[a]);
    if (!selected) continue;
    ++ran;
    std::cout << "== " << b.where << "\n" << std::flush;
    const fs::path scratch = base / ("doc_scratch_" + std::string(b.id));
    fs::remove_all(scratch);
    fs::create_directories(scratch);
    fs::current_path(scratch);
    std::string error;
    try {
      if (const int code = b.run()) error = "main() returned " + std::to_string(code);
    } catch (const std::exception& e) {
      error = std::string("uncaught exception: ") + e.what();
    } catch (...) {
      error = "uncaught exception of a type not derived from std::exception";
    }
    std::cout << std::flush;
    fs::current_path(base);
    if (error.empty()) {
      fs::remove_all(scratch);
    } else {
      std::cerr << b.where << " FAILED: " << error << " (its files are in " << scratch.string() << ")\n";
      ++failed;
    }
  }
  if (ran == 0) {
    std::cerr << "colora_doc_snippets: no block has the id given; the ids are:";
    for (const Block& b : blocks) std::cerr << " " << b.id;
    std::cerr << "\n";
    return 2;
  }
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
]=])

  string(REPLACE "${_semi}" ";" _out "${_out}")
  string(REPLACE "${_open}" "[" _out "${_out}")
  string(REPLACE "${_close}" "]" _out "${_out}")
  string(REPLACE "${_bslash}" "\\" _out "${_out}")
  file(WRITE "${ARG_OUTPUT}.tmp" "${_out}")
  configure_file("${ARG_OUTPUT}.tmp" "${ARG_OUTPUT}" COPYONLY)  # touched only when it changes
  file(REMOVE "${ARG_OUTPUT}.tmp")
  set(COLORA_DOC_SNIPPET_IDS "${_ids}" PARENT_SCOPE)
endfunction()

if(CMAKE_SCRIPT_MODE_FILE STREQUAL CMAKE_CURRENT_LIST_FILE)
  colora_extract_doc_snippets(ROOT "${ROOT}" OUTPUT "${OUTPUT}" PAGES ${PAGES})
  message(STATUS "${OUTPUT}: ${COLORA_DOC_SNIPPET_IDS}")
endif()
