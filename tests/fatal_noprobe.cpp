// tests/fatal_noprobe.cpp: code built as a project that does not use goro's CMake target would
// build it, without -fstack-clash-protection (tests/CMakeLists.txt), for the overflow scenarios
// of fatal_programs.cpp: a frame that jumps over the first pages of the guard must still fault
// in it.

// buffer_frame_unprobed() is fatal_programs.cpp's buffer_frame(), unprobed: an I/O buffer of
// 32 KiB of which only the first 4 KiB get data.
#include <cstring>

__attribute__((noinline)) int buffer_frame_unprobed() {
    char buf[32 * 1024];
    std::memset(buf, 0xAB, 4096);
    asm volatile("" : : "r"(buf) : "memory");
    return buf[0];
}
