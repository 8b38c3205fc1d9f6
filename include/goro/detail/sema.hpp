// goro/detail/sema.hpp: the semaphore under Mutex, RWMutex and WaitGroup (mirrors sema.go).
//
// A counting semaphore: release() adds a token, acquire() takes one or parks. Waiters queue
// FIFO (or LIFO for a Mutex waiter that has waited before, so it keeps its place at the head).
// A release that finds a waiter hands its token to that waiter directly; with handoff it also
// lets the waiter run at once on this worker, which is how Mutex starvation mode passes
// ownership without letting newcomers barge in.
//
// Lifetime. Go keeps semaphore state in a global table keyed by address, so a releaser never
// touches the object that owns the semaphore after a waiter may have returned. In C++ the
// semaphore lives inside its owner, and a WaitGroup is routinely destroyed the moment wait()
// returns. So the count and the queue change only under the lock, a waiter can only take a
// token under the lock, and the releaser's unlock is its last access to the object (the
// futex wake that may follow only names the address, as pthread_mutex_unlock's does);
// waiters are readied after that, from what the releaser copied off the queue.
#pragma once

#include "goro/detail/waiter.hpp"

namespace goro::detail {

class Sema {
public:
    // acquire() takes a token, parking until one is released (semacquire1).
    void acquire(bool lifo = false) {
        SyncOp op(this);
        mu_.lock();
        acquire_from(this);
        if (count_ > 0) {
            --count_;
            mu_.unlock();
            return;
        }
        Waiter w;
        w.parker = current_parker();
        if (lifo) q_.push_front(&w); else q_.push_back(&w);
        park_on(mu_, w);  // woken only with the token: release() handed it over
    }

    // release() adds n tokens, handing them to waiters first (semrelease1). With handoff the
    // (single) woken waiter runs next on this worker.
    void release(std::uint32_t n = 1, bool handoff = false) {
        SyncOp op(this);  // a woken waiter may destroy *this before this returns
        Waiter* wake = nullptr;  // popped waiters, linked through Waiter::next
        Waiter** tail = &wake;
        mu_.lock();
        for (; n > 0; --n) {
            Waiter* w = q_.pop_front();
            if (!w) break;
            *tail = w;
            tail = &w->next;
        }
        count_ += n;
        mu_.unlock();  // the last access to *this: a woken waiter may destroy our owner
        auto& sched = Scheduler::instance();
        while (wake) {
            Waiter* next = wake->next;  // read before ready: the waiter may vanish after
            wake_parker(wake->parker);
            wake = next;
            if (handoff && !wake) sched.yield_local();
        }
    }

private:
    Lock mu_;
    std::uint32_t count_ = 0;  // tokens nobody waits for; guarded by mu_
    WaitQueue q_;              // guarded by mu_
};

}  // namespace goro::detail
