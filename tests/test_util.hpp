// tests/test_util.hpp: shared helpers for goro's tests.
#pragma once

#include <cstdlib>
#include <string>

namespace goro_test {

// scale() multiplies stress sizes: GORO_TEST_SCALE=10 for a soak, 0.1 for a quick run.
// Sanitizer builds default to a tenth, since they run every switch through instrumentation.
inline double scale() {
    if (const char* s = std::getenv("GORO_TEST_SCALE")) return std::atof(s);
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    return 0.1;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
    return 0.1;
#endif
#endif
    return 1.0;
}

inline int scaled(int n, int floor = 1) {
    int v = static_cast<int>(n * scale());
    return v < floor ? floor : v;
}

}  // namespace goro_test
