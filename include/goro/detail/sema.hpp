// goro/detail/sema.hpp: the semaphore under Mutex, RWMutex and WaitGroup (mirrors sema.go).
//
// A counting semaphore: release() adds a token, acquire() takes one or parks. Waiters queue
// FIFO (or LIFO for a Mutex waiter that has waited before, so it keeps its place at the head).
// With handoff, release() gives its token directly to the first waiter and lets it run at once:
// that is how Mutex starvation mode passes ownership without letting newcomers barge in.
// Unlike Go, which hashes semaphore addresses into a global table of treaps, each Sema holds
// its own queue: C++ objects can carry state, and there is no table lock to contend on.
#pragma once

#include "goro/detail/waiter.hpp"

namespace goro::detail {

class Sema {
public:
    // acquire() takes a token, parking until one is released (semacquire1).
    void acquire(bool lifo = false) {
        if (try_acquire()) return;
        Waiter w;
        w.parker = current_parker();
        for (;;) {
            mu_.lock();
            nwait_.fetch_add(1, std::memory_order_seq_cst);
            if (try_acquire()) {
                nwait_.fetch_sub(1, std::memory_order_seq_cst);
                mu_.unlock();
                return;
            }
            w.ticket = 0;
            if (lifo) q_.push_front(&w); else q_.push_back(&w);
            park_on(mu_);
            if (w.ticket != 0 || try_acquire()) return;
        }
    }

    // release() adds a token and wakes one waiter (semrelease1). With handoff the waiter
    // receives the token itself and runs next on this worker.
    void release(bool handoff = false) {
        count_.fetch_add(1, std::memory_order_seq_cst);
        if (nwait_.load(std::memory_order_seq_cst) == 0) return;
        mu_.lock();
        if (nwait_.load(std::memory_order_relaxed) == 0) {
            mu_.unlock();
            return;
        }
        Waiter* w = q_.pop_front();
        if (w) nwait_.fetch_sub(1, std::memory_order_seq_cst);
        mu_.unlock();
        if (!w) return;
        bool handed = handoff && try_acquire();
        if (handed) w->ticket = 1;
        Scheduler::instance().ready(w->parker);  // w may be gone from here on
        if (handed) Scheduler::instance().yield_local();
    }

private:
    bool try_acquire() noexcept {
        std::uint32_t v = count_.load(std::memory_order_relaxed);
        while (v > 0)
            if (count_.compare_exchange_weak(v, v - 1, std::memory_order_acquire)) return true;
        return false;
    }

    std::atomic<std::uint32_t> count_{0};
    std::atomic<std::uint32_t> nwait_{0};  // waiters, read without mu_ to skip the lock
    Lock mu_;
    WaitQueue q_;  // guarded by mu_
};

}  // namespace goro::detail
