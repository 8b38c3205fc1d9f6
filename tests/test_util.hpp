// tests/test_util.hpp: shared helpers for goro's tests.
#pragma once

#include <goro/go.hpp>
#include <goro/time.hpp>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>

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

// sanitized() tells whether this build runs under AddressSanitizer or ThreadSanitizer.
constexpr bool sanitized() {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    return true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
    return true;
#else
    return false;
#endif
#else
    return false;
#endif
}

// max_live_goroutines() bounds how many goroutines a test may keep alive at once. Under
// ThreadSanitizer every live goroutine is a TSan fiber, which TSan counts as a thread and caps
// at 8,128 (with its main thread, the workers and its own among them); under AddressSanitizer
// every fresh stack costs shadow memory and a fault per page, so stay in the thousands too.
constexpr int max_live_goroutines() {
    return sanitized() ? 4000 : 1 << 30;
}

// seconds_since() is the time elapsed since t, for generous upper bounds.
inline double seconds_since(goro::Clock::time_point t) {
    return std::chrono::duration<double>(goro::Clock::now() - t).count();
}

// GomaxprocsGuard sets GOMAXPROCS for one test and restores the previous value after it.
class GomaxprocsGuard {
public:
    explicit GomaxprocsGuard(int n) : old_(goro::set_gomaxprocs(n)) {}
    GomaxprocsGuard(const GomaxprocsGuard&) = delete;
    GomaxprocsGuard& operator=(const GomaxprocsGuard&) = delete;
    ~GomaxprocsGuard() { goro::set_gomaxprocs(old_); }
    int previous() const { return old_; }

private:
    int old_;
};

// Watchdog ends the process with a message if its scope is not left within `limit`. Guard
// tests whose failure mode is a hang inside the runtime (a lost wake-up, a corrupted run or
// idle list), where the test thread itself is stuck and cannot report.
class Watchdog {
public:
    explicit Watchdog(const char* what, std::chrono::seconds limit = std::chrono::seconds(60))
        : thread_([this, what, limit] {
              std::unique_lock<std::mutex> lock(mu_);
              if (!cv_.wait_for(lock, limit, [this] { return done_; })) {
                  std::fprintf(stderr, "watchdog: '%s' still running after %llds: hang\n", what,
                               static_cast<long long>(limit.count()));
                  std::fflush(stderr);
                  std::abort();
              }
          }) {}
    Watchdog(const Watchdog&) = delete;
    Watchdog& operator=(const Watchdog&) = delete;
    ~Watchdog() {
        {
            std::lock_guard<std::mutex> lock(mu_);
            done_ = true;
        }
        cv_.notify_one();
        thread_.join();
    }

private:
    std::mutex mu_;
    std::condition_variable cv_;
    bool done_ = false;  // guarded by mu_
    std::thread thread_;
};

}  // namespace goro_test
