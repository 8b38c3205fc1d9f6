// tests/run_util.hpp: running a test body on a goroutine, and polling with a bound.
#pragma once

#include <goro/goro.hpp>

#include <chrono>
#include <exception>
#include <utility>

namespace goro_test {

// run_in_goroutine() runs f on a goroutine and waits for it on the calling thread. An exception
// from f (a failed REQUIRE included) is rethrown on the caller, so Catch2 reports it instead of
// the process ending with a goroutine panic. Catch2 is not thread-safe, but the caller is
// blocked for the whole run, so only one thread ever asserts at a time.
template <class F>
void run_in_goroutine(F&& f) {
    std::exception_ptr error;
    goro::WaitGroup wg;
    wg.add(1);
    goro::go([&] {
        try {
            f();
        } catch (...) {
            error = std::current_exception();
        }
        wg.done();
    });
    wg.wait();
    if (error) std::rethrow_exception(error);
}

// on_thread_and_goroutine() runs f twice: on the calling plain thread, then on a goroutine, so
// that both ways of blocking (a parked thread, a parked goroutine) are exercised.
template <class F>
void on_thread_and_goroutine(F&& f) {
    f();
    run_in_goroutine(f);
}

// poll_until() checks pred every millisecond until it holds or `limit` passes; it returns the
// last value of pred. Waiting with a bound turns a hang into a failed assertion.
template <class Pred>
bool poll_until(Pred pred, std::chrono::milliseconds limit = std::chrono::seconds(10)) {
    auto deadline = goro::Clock::now() + limit;
    while (!pred()) {
        if (goro::Clock::now() >= deadline) return pred();
        goro::sleep_for(std::chrono::milliseconds(1));
    }
    return true;
}

}  // namespace goro_test
