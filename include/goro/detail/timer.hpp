// goro/detail/timer.hpp: the per-worker timer heaps (mirrors the per-P timers of time.go).
//
// The model. Every worker owns a 4-ary min-heap of Timer records behind its own lock; a timer
// goes into the heap of the worker that starts it (worker 0's for plain threads). A worker runs
// the expired timers of its own heap at every scheduling round, an idle worker runs those of the
// heaps it steals from, and the one idle worker that is "the poller" sleeps exactly until the
// earliest timer of all heaps (Scheduler::find_runnable). Adding a timer earlier than the
// poller's wake-up time wakes it (Scheduler::wake_poller).
//
// Invariants. A Timer is in at most one heap; Timer::heap and Timer::index are written only
// under that heap's lock (heap is atomic so that stop() can find the lock without holding it).
// A timer's function runs with no lock held, on a worker's scheduler stack: it must not park.
// Lifetime: a one-shot timer is out of every heap before its function runs, and the runtime
// never touches the record after calling it, so the function may free it (or ready a goroutine
// whose stack holds it). A periodic timer stays in its heap while its function runs, so a
// concurrent stop() could let its owner free it mid-run: such timers set `retain`, which the
// runtime calls under the heap lock before running the function, and the function releases
// that reference when done.
//
// Rejected: Go 1.14's lock-free status machine (timerModifiedEarlier...): with C++ ownership a
// plain per-heap lock is simpler and its hold times are a few dozen instructions; a single
// global heap (one lock for every timer in the process; 10,000 sleepers contend on it).
#pragma once

#include "goro/detail/platform.hpp"

#include <cstdint>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

namespace goro::detail {

class TimerHeap;

struct Timer {
    std::int64_t when = 0;       // steady-clock nanoseconds
    std::int64_t period = 0;     // nanoseconds between runs; 0 runs once
    void (*f)(Timer*) = nullptr; // runs on a worker's scheduler stack, with no lock held
    void* arg = nullptr;
    void (*retain)(Timer*) = nullptr;  // periodic timers: take a reference for one run of f
    std::atomic<TimerHeap*> heap{nullptr};  // the heap holding it, nullptr when not pending
    int index = -1;                         // position in heap; guarded by heap's lock
};

static_assert(std::is_same_v<Clock::duration, std::chrono::nanoseconds>,
              "timer times are the steady clock's nanoseconds, unconverted");

inline std::int64_t nanotime() noexcept { return Clock::now().time_since_epoch().count(); }

// add_sat() is a + b, saturated to the int64 range instead of wrapping.
inline std::int64_t add_sat(std::int64_t a, std::int64_t b) noexcept {
    std::int64_t r;
    if (__builtin_add_overflow(a, b, &r)) return b > 0 ? INT64_MAX : INT64_MIN;
    return r;
}

// deadline_after() is now + d, saturated: a duration too long to represent means "never"
// (time_point::max(), which as a timer time is TimerHeap::never) rather than a time that wrapped
// into the past. Every entry that turns a duration into a deadline goes through here (mirrors
// when in time/sleep.go: "if t < 0 { t = 1<<63 - 1 }").
inline Clock::time_point deadline_after(Clock::duration d) noexcept {
    return Clock::time_point(Clock::duration(add_sat(nanotime(), d.count())));
}

// when() is the timer time of t, and of a duration from now.
inline std::int64_t when(Clock::time_point t) noexcept { return t.time_since_epoch().count(); }
inline std::int64_t when(Clock::duration d) noexcept { return when(deadline_after(d)); }

// coarse_nanotime() is a cheap clock of a few milliseconds' resolution (the kernel tick), for
// time slices.
inline std::int64_t coarse_nanotime() noexcept {
    timespec ts;
    ::clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

class TimerHeap {
public:
    static constexpr std::int64_t never = INT64_MAX;

    // next() is the earliest pending deadline, read without the lock.
    std::int64_t next() const noexcept { return min_when_.load(std::memory_order_acquire); }

    // push() adds t (not pending anywhere) to this heap.
    void push(Timer* t) {
        std::lock_guard<Lock> g(mu_);
        push_locked(t);
    }

    // remove() takes t out of its heap; false if it was not pending (fired or stopped). It does
    // not wait for a run of t's function that is under way (as Go's deltimer).
    static bool remove(Timer* t) noexcept {
        for (;;) {
            TimerHeap* h = t->heap.load(std::memory_order_acquire);
            if (!h) return false;
            std::lock_guard<Lock> g(h->mu_);
            if (t->heap.load(std::memory_order_relaxed) != h) continue;
            h->erase_locked(t->index);
            t->heap.store(nullptr, std::memory_order_release);
            return true;
        }
    }

    // run_expired() runs every timer due by now; returns how many ran. pending counts the
    // process's one-shot pending timers and is decremented for each one that fires.
    int run_expired(std::int64_t now, std::atomic<int>& pending) {
        if (next() > now) return 0;
        return run_expired_slow(now, pending);
    }
    // run_due() is run_expired(nanotime()) without reading the clock when the heap is empty.
    int run_due(std::atomic<int>& pending) {
        if (GORO_LIKELY(next() == never)) return 0;
        return run_expired(nanotime(), pending);
    }

private:
    int run_expired_slow(std::int64_t now, std::atomic<int>& pending) {
        int ran = 0;
        std::unique_lock<Lock> g(mu_);
        while (!heap_.empty() && heap_[0]->when <= now) {
            Timer* t = heap_[0];
            if (t->period > 0) {
                std::int64_t late = now - t->when;
                // Saturates to never (runOneTimer: "if t.when < 0 { t.when = maxWhen }").
                t->when = add_sat(t->when, t->period * (1 + late / t->period));
                sift_down(0);
                if (t->retain) t->retain(t);
            } else {
                erase_locked(0);
                t->heap.store(nullptr, std::memory_order_release);
                pending.fetch_sub(1, std::memory_order_relaxed);
            }
            g.unlock();
            t->f(t);  // t may be gone from here on
            ++ran;
            g.lock();
        }
        return ran;
    }

public:
    // move_all_to() hands every timer to dst (used when a worker retires).
    void move_all_to(TimerHeap& dst) {
        std::scoped_lock g(mu_, dst.mu_);
        for (Timer* t : heap_) dst.push_locked(t);
        heap_.clear();
        publish();
    }

    bool empty() const noexcept { return next() == never; }

private:
    void push_locked(Timer* t) {
        t->index = static_cast<int>(heap_.size());
        heap_.push_back(t);
        t->heap.store(this, std::memory_order_release);
        sift_up(t->index);
        publish();
    }
    void erase_locked(int i) noexcept {
        int last = static_cast<int>(heap_.size()) - 1;
        if (i != last) {
            heap_[i] = heap_[last];
            heap_[i]->index = i;
        }
        heap_.pop_back();
        if (i < static_cast<int>(heap_.size())) {
            sift_up(i);
            sift_down(i);
        }
        publish();
    }
    void publish() noexcept {
        min_when_.store(heap_.empty() ? never : heap_[0]->when, std::memory_order_release);
    }
    void sift_up(int i) noexcept {
        Timer* t = heap_[i];
        while (i > 0) {
            int p = (i - 1) / 4;
            if (heap_[p]->when <= t->when) break;
            heap_[i] = heap_[p];
            heap_[i]->index = i;
            i = p;
        }
        heap_[i] = t;
        t->index = i;
    }
    void sift_down(int i) noexcept {
        int n = static_cast<int>(heap_.size());
        Timer* t = heap_[i];
        for (;;) {
            int c = 4 * i + 1;
            if (c >= n) break;
            int best = c;
            for (int k = c + 1; k < c + 4 && k < n; ++k)
                if (heap_[k]->when < heap_[best]->when) best = k;
            if (heap_[best]->when >= t->when) break;
            heap_[i] = heap_[best];
            heap_[i]->index = i;
            i = best;
        }
        heap_[i] = t;
        t->index = i;
        publish();
    }

    Lock mu_;
    std::vector<Timer*> heap_;  // guarded by mu_
    std::atomic<std::int64_t> min_when_{never};
};

}  // namespace goro::detail
