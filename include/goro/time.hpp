// goro/time.hpp: sleeping, timers and tickers (Go's time package).
//
//     goro::sleep_for(10ms);                       // parks the goroutine, not the worker
//
// Timers live in the scheduler's per-worker heaps (detail/timer.hpp): an idle worker sleeps
// exactly until the next one is due, so ten thousand sleeping goroutines cost ten thousand heap
// entries and no threads. On a plain thread these calls block the thread.
#pragma once

#include "goro/detail/sched.hpp"

#include <chrono>
#include <thread>

namespace goro {

using Clock = std::chrono::steady_clock;

// sleep_until() parks the caller until t (time.Sleep). A time in the past returns at once.
inline void sleep_until(Clock::time_point t) {
    auto& sched = detail::Scheduler::instance();
    detail::Parker* self = detail::current_parker();
    if (self->kind == detail::Parker::Kind::thread) {
        std::this_thread::sleep_until(t);
        return;
    }
    std::int64_t when =
        std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
    if (when <= detail::nanotime()) return;
    detail::Timer timer;
    timer.when = when;
    timer.stoppable = false;
    timer.arg = self;
    timer.f = [](detail::Timer* tm) {
        detail::Scheduler::instance().ready(static_cast<detail::Parker*>(tm->arg));
    };
    auto arm = [&] { sched.timer_start(&timer); };
    sched.park(detail::make_unlock(arm));
}

// sleep_for() parks the caller for at least d (time.Sleep).
inline void sleep_for(Clock::duration d) {
    if (d <= Clock::duration::zero()) return;
    sleep_until(Clock::now() + d);
}

}  // namespace goro
