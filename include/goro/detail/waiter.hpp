// goro/detail/waiter.hpp: the wait-queue entry (Go's sudog) and its intrusive FIFO queue.
//
// A Waiter lives on the stack of the goroutine (or thread) that waits, for exactly as long as
// it is parked, so queueing never allocates. The queue holding it is protected by the lock of
// the object it waits on (a channel, a semaphore, a cond); whoever dequeues a waiter owns it
// until it calls ready(), after which the waiter's memory may vanish at any moment.
#pragma once

#include "goro/detail/sched.hpp"

namespace goro::detail {

struct SelectState;

struct Waiter {
    Parker* parker = nullptr;   // who to ready
    Waiter* next = nullptr;     // guarded by the owning queue's lock
    Waiter* prev = nullptr;     // guarded by the owning queue's lock
    void* elem = nullptr;       // channels: where the value is read from or written to
    bool success = false;       // channels: woken by a communication (true) or a close (false)
    std::uint32_t ticket = 0;   // semaphores: 1 when the token was handed off; conds: the ticket
    SelectState* select = nullptr;  // set when the waiter is one case of a select
    int case_index = -1;            // which case, for select
};

// WaitQueue is a doubly linked FIFO of waiters (Go's waitq); O(1) removal from the middle.
class WaitQueue {
public:
    bool empty() const noexcept { return first_.load(std::memory_order_relaxed) == nullptr; }
    Waiter* front() const noexcept { return first_.load(std::memory_order_relaxed); }

    void push_back(Waiter* w) noexcept {
        w->next = nullptr;
        w->prev = last_;
        if (last_) last_->next = w; else set_first(w);
        last_ = w;
    }
    void push_front(Waiter* w) noexcept {
        Waiter* f = front();
        w->prev = nullptr;
        w->next = f;
        if (f) f->prev = w; else last_ = w;
        set_first(w);
    }
    Waiter* pop_front() noexcept {
        Waiter* w = front();
        if (w) remove(w);
        return w;
    }
    void remove(Waiter* w) noexcept {
        if (w->prev) w->prev->next = w->next; else set_first(w->next);
        if (w->next) w->next->prev = w->prev; else last_ = w->prev;
        w->next = w->prev = nullptr;
    }
    // take_all() empties the queue and returns its former first element.
    Waiter* take_all() noexcept {
        Waiter* w = front();
        set_first(nullptr);
        last_ = nullptr;
        return w;
    }

private:
    void set_first(Waiter* w) noexcept { first_.store(w, std::memory_order_relaxed); }

    // first_ is read without the lock by the channels' non-blocking fast paths (a racy hint,
    // as in Go); it is written only under the lock.
    std::atomic<Waiter*> first_{nullptr};
    Waiter* last_ = nullptr;
};

// wake_parker() readies a waiter's parker, first ordering the waker before it for the race detector
// (release_to; the waiter acquires from its parker when it resumes). Call it from inside the
// operation's one RuntimeSection or SyncOp.
inline void wake_parker(Parker* p) {
    release_to(p);
    Scheduler::instance().ready(p);
}

// park_on() parks the caller, queued as w under `lock`, releasing `lock` once it is safely
// marked waiting. Once woken it acquires what its waker released to w's parker (wake_parker).
inline void park_on(Lock& lock, const Waiter& w) {
    auto unlock = [&lock] { lock.unlock(); };
    Scheduler::instance().park(make_unlock(unlock));
    acquire_from(w.parker);
}

}  // namespace goro::detail
