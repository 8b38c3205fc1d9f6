// goro/time.hpp: sleeping, timers and tickers (Go's time package).
//
//     goro::sleep_for(10ms);                       // parks the goroutine, not the worker
//     goro::select(goro::recv(results, ...),
//                  goro::recv(goro::after(1s), [] { timed_out(); }));
//     goro::Ticker t(100ms);
//     for (auto now : t.c()) { ... }
//
// Timers live in the scheduler's per-worker heaps (detail/timer.hpp): an idle worker sleeps
// exactly until the next one is due, so ten thousand sleeping goroutines cost ten thousand heap
// entries and no threads. On a plain thread these calls block the thread.
//
// Durations saturate as Go's do: now + duration::max() is "never" (a timer that stays pending
// and never fires), not a time that wrapped into the past (detail::deadline_after).
#pragma once

#include "goro/channel.hpp"
#include "goro/detail/sched.hpp"

#include <chrono>
#include <stdexcept>
#include <thread>

namespace goro {

using Clock = std::chrono::steady_clock;

// sleep_until() parks the caller until t (time.Sleep). A time in the past returns at once;
// time_point::max() never comes.
inline void sleep_until(Clock::time_point t) {
    auto& sched = detail::Scheduler::instance();
    detail::Parker* self = detail::current_parker();
    if (self->kind == detail::Parker::Kind::thread) {
        std::this_thread::sleep_until(t);  // copes with max(): nanosleep for ~292 years
        return;
    }
    std::int64_t when = detail::when(t);
    if (when <= detail::nanotime()) return;
    detail::Timer timer;
    timer.when = when;
    timer.arg = self;
    timer.f = [](detail::Timer* tm) {
        detail::Scheduler::instance().ready(static_cast<detail::Parker*>(tm->arg));
    };
    auto arm = [&] { sched.timer_start(&timer); };
    sched.park(detail::make_unlock(arm));
}

// sleep_for() parks the caller for at least d (time.Sleep); duration::max() is forever.
inline void sleep_for(Clock::duration d) {
    if (d <= Clock::duration::zero()) return;
    sleep_until(detail::deadline_after(d));
}

namespace detail {

// ChanTimer is a runtime timer that sends the time on a capacity-1 channel when it fires,
// dropping the tick if the previous one is still unread (Go's sendTime). It is reference-counted:
// by its handle (Timer, Ticker) and by the heap while it is pending, so a timer whose handle is
// gone still fires into its channel, as Go's do.
class ChanTimer {
public:
    static ChanTimer* make(Clock::duration d, Clock::duration period) {
        auto* t = new ChanTimer();
        t->timer_.period = std::chrono::duration_cast<std::chrono::nanoseconds>(period).count();
        t->arm(d);
        return t;
    }

    Channel<Clock::time_point> channel() const { return ch_; }

    // stop() disarms the timer; true if it was pending.
    bool stop() {
        std::lock_guard<Lock> g(mu_);
        return disarm_locked();
    }
    // reset() disarms and rearms it to fire after d; true if it was pending.
    bool reset(Clock::duration d, std::int64_t period) {
        std::lock_guard<Lock> g(mu_);
        bool was = disarm_locked();
        timer_.period = period;
        arm(d);
        return was;
    }

    void release() noexcept {
        if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
    }

private:
    ChanTimer() : ch_(1) {
        timer_.arg = this;
        timer_.f = &fire;
        timer_.retain = [](Timer* t) { static_cast<ChanTimer*>(t->arg)->retain(); };
    }
    void retain() noexcept { refs_.fetch_add(1, std::memory_order_relaxed); }

    void arm(Clock::duration d) {
        timer_.when = when(d);
        retain();  // the heap's reference
        Scheduler::instance().timer_start(&timer_);
    }
    bool disarm_locked() {
        if (!Scheduler::instance().timer_stop(&timer_)) return false;
        release();  // the heap's reference; the handle still holds one
        return true;
    }
    // fire() owns one reference: the heap's for a one-shot timer, retain's for a periodic one.
    static void fire(Timer* t) {
        auto* self = static_cast<ChanTimer*>(t->arg);
        Clock::time_point now = Clock::now();
        chansend(self->ch_.core(), &now, false);  // full: the reader missed a tick, drop it
        self->release();
    }

    Timer timer_;
    Channel<Clock::time_point> ch_;
    std::atomic<int> refs_{1};  // the handle's reference
    Lock mu_;                   // serialises stop and reset
};

}  // namespace detail

// after() returns a channel that receives the time once d has elapsed (time.After).
inline RecvChannel<Clock::time_point> after(Clock::duration d) {
    auto* t = detail::ChanTimer::make(d, Clock::duration::zero());
    RecvChannel<Clock::time_point> c = t->channel();
    t->release();  // the pending timer keeps itself alive until it fires
    return c;
}

// tick() returns a channel that receives the time every d, forever (time.Tick); nil if d <= 0.
inline RecvChannel<Clock::time_point> tick(Clock::duration d) {
    if (d <= Clock::duration::zero()) return {};
    auto* t = detail::ChanTimer::make(d, d);
    RecvChannel<Clock::time_point> c = t->channel();
    t->release();  // never stopped: the heap keeps it, as Go's Tick leaks its ticker
    return c;
}

// Timer sends the time on c() once, after a duration (time.Timer). Its channel has capacity 1.
// Dropping the Timer does not stop it: it still fires into its channel, as Go's does.
class Timer {
public:
    // Timer(d) starts a timer that fires after d.
    explicit Timer(Clock::duration d) : t_(detail::ChanTimer::make(d, Clock::duration::zero())) {}
    Timer(Timer&& o) noexcept : t_(std::exchange(o.t_, nullptr)) {}
    Timer& operator=(Timer&& o) noexcept {
        std::swap(t_, o.t_);
        return *this;
    }
    ~Timer() {
        if (t_) t_->release();
    }

    // c() is the channel on which the time is delivered.
    RecvChannel<Clock::time_point> c() const { return t_->channel(); }
    // stop() prevents the timer from firing; true if that stopped it, false if it had already
    // fired or been stopped. It does not drain the channel.
    bool stop() { return t_->stop(); }
    // reset() makes the timer fire after d from now; true if it had been pending. As in Go,
    // call it on a stopped or fired timer whose channel has been drained.
    bool reset(Clock::duration d) { return t_->reset(d, 0); }

private:
    detail::ChanTimer* t_;
};

// Ticker sends the time on c() every period (time.Ticker); a slow reader misses ticks rather
// than queueing them. Destroying the Ticker stops it.
class Ticker {
public:
    // Ticker(d) starts ticking every d; d must be positive (std::invalid_argument).
    explicit Ticker(Clock::duration d) : t_(make(d)) {}
    Ticker(Ticker&& o) noexcept : t_(std::exchange(o.t_, nullptr)) {}
    Ticker& operator=(Ticker&& o) noexcept {
        std::swap(t_, o.t_);
        return *this;
    }
    ~Ticker() {
        if (t_) {
            t_->stop();
            t_->release();
        }
    }

    RecvChannel<Clock::time_point> c() const { return t_->channel(); }
    // stop() turns the ticker off; no more ticks are sent. It does not close the channel.
    void stop() { t_->stop(); }
    // reset() stops the ticker and restarts it with period d; the next tick comes after d.
    void reset(Clock::duration d) {
        check(d);
        t_->reset(d, std::chrono::duration_cast<std::chrono::nanoseconds>(d).count());
    }

private:
    static void check(Clock::duration d) {
        if (d <= Clock::duration::zero())
            throw std::invalid_argument("non-positive interval for Ticker");
    }
    static detail::ChanTimer* make(Clock::duration d) {
        check(d);
        return detail::ChanTimer::make(d, d);
    }
    detail::ChanTimer* t_;
};

}  // namespace goro
