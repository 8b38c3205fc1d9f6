// goro/detail/chan.hpp: the channel core and select (mirrors chan.go and select.go).
//
// The model. A channel (ChanBase, Go's hchan) is a lock, an optional ring buffer of `cap`
// elements, and two FIFO queues of parked waiters (Go's sudog, here Waiter, living on the
// waiter's own stack): receivers waiting for a value and senders waiting to hand one over.
// Values move straight between the two parties whenever possible:
//   - a send that finds a waiting receiver moves its value into the receiver's slot and readies
//     it, never touching the buffer (direct handoff);
//   - a receive from a full buffer with a waiting sender takes the head, and moves the sender's
//     value into the slot that freed up, so FIFO order holds and the sender need not retry;
//   - otherwise values go through the buffer, and the caller parks only when it can do neither.
// Elements are moved through three type-erased functions set by Chan<T>, so select can work on
// channels of different element types through one code path.
//
// Invariants (under the lock):
//   - at least one of sendq and recvq is empty, except on an unbuffered channel where a single
//     select may be queued on both sides of the same channel (it never meets itself);
//   - recvq is non-empty only if the buffer is empty; sendq only if the buffer is full;
//   - after close, both queues are empty and stay empty.
// Waiters are readied only after the lock is released; a waiter that has been dequeued belongs
// to its waker until ready(), and its memory may vanish right after.
//
// Select (selectgo). Cases are polled in a random order (uniform choice among ready cases) with
// every involved channel locked in address order (so two selects over the same channels cannot
// deadlock, and a channel repeated in one select is locked once). If no case is ready and there
// is no default, one Waiter per case is queued, all sharing one SelectState, and the caller
// parks. The first waker to win the CAS on SelectState::done commits its case; other wakers
// skip (and drop) the select's remaining waiters as they meet them. On wake-up the select locks
// its channels again and unlinks its losing waiters in O(1) each. Nothing is allocated: the
// cases, the orders and the waiters are arrays on the caller's stack.
//
// The non-blocking fast paths (a failed try on an empty or full channel) read qcount, closed and
// the queue heads without the lock, exactly as Go's do, and recheck in the right order so that a
// concurrent close is not misreported.
//
// Lock order: channel locks in ascending address order, then (through ready) the scheduler's.
#pragma once

#include "goro/detail/waiter.hpp"

#include <algorithm>
#include <new>
#include <optional>
#include <stdexcept>
#include <utility>

namespace goro {

// ChannelClosed is thrown by a send on a closed channel, and by closing a closed or nil channel.
class ChannelClosed : public std::logic_error {
public:
    using std::logic_error::logic_error;
};

}  // namespace goro

namespace goro::detail {

// SelectState is shared by the waiters of one blocked select (Go's g.selectDone and g.param).
struct SelectState {
    std::atomic<std::uint32_t> done{0};  // set to 1 by the one waker that commits a case
    Waiter* winner = nullptr;            // written by that waker before it readies the select
};

class ChanBase {
public:
    using BufPut = void (*)(ChanBase*, std::size_t slot, void* src) noexcept;
    using BufTake = void (*)(ChanBase*, std::size_t slot, void* dst) noexcept;
    using Hand = void (*)(void* dst, void* src) noexcept;

    ChanBase(std::size_t capacity, BufPut put, BufTake take, Hand hand,
             void (*destroy)(ChanBase*)) noexcept
        : cap(capacity), buf_put(put), buf_take(take), hand(hand), destroy(destroy) {}

    void retain() noexcept { refs.fetch_add(1, std::memory_order_relaxed); }
    void release() noexcept {
        if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) destroy(this);
    }

    // Is a receive certain to block? Is a send? (empty and full in chan.go; racy hints)
    bool recv_would_block() const noexcept {
        return cap == 0 ? sendq.empty() : qcount.load(std::memory_order_relaxed) == 0;
    }
    bool send_would_block() const noexcept {
        return cap == 0 ? recvq.empty() : qcount.load(std::memory_order_relaxed) == cap;
    }

    const std::size_t cap;
    const BufPut buf_put;    // constructs slot from std::move(*(T*)src)
    const BufTake buf_take;  // moves slot into *(std::optional<T>*)dst (if dst) and destroys it
    const Hand hand;         // moves *(T*)src into *(std::optional<T>*)dst
    void (*const destroy)(ChanBase*);

    std::atomic<long> refs{1};
    Lock lock;
    std::atomic<std::size_t> qcount{0};  // values in the buffer; written under lock
    std::size_t sendx = 0;               // next slot to fill; guarded by lock
    std::size_t recvx = 0;               // next slot to drain; guarded by lock
    std::atomic<bool> closed{false};     // written under lock
    WaitQueue recvq;                     // guarded by lock
    WaitQueue sendq;                     // guarded by lock
};

// Chan<T> is a ChanBase with its buffer of T allocated right behind it.
template <class T>
class Chan final : public ChanBase {
public:
    static Chan* make(std::size_t capacity) {
        if (capacity > (std::size_t{1} << 40) / sizeof(T))
            throw std::length_error("makechan: size out of range");
        void* p = ::operator new(buf_offset() + capacity * sizeof(T), align);
        return ::new (p) Chan(capacity);
    }

private:
    explicit Chan(std::size_t capacity) noexcept
        : ChanBase(capacity, &put, &take, &handoff, &destroy_chan) {}

    // The allocation is aligned for both the header and T, so that the buffer, placed at the
    // first multiple of alignof(T) past the header, is aligned for an over-aligned T too.
    static constexpr std::align_val_t align{std::max(alignof(Chan), alignof(T))};
    static constexpr std::size_t buf_offset() noexcept {
        return (sizeof(Chan) + alignof(T) - 1) / alignof(T) * alignof(T);
    }
    static T* slot(ChanBase* c, std::size_t i) noexcept {
        return reinterpret_cast<T*>(reinterpret_cast<char*>(static_cast<Chan*>(c)) +
                                    buf_offset()) + i;
    }
    static void put(ChanBase* c, std::size_t i, void* src) noexcept {
        ::new (slot(c, i)) T(std::move(*static_cast<T*>(src)));
    }
    static void take(ChanBase* c, std::size_t i, void* dst) noexcept {
        T* s = slot(c, i);
        if (dst) static_cast<std::optional<T>*>(dst)->emplace(std::move(*s));
        std::destroy_at(s);
    }
    static void handoff(void* dst, void* src) noexcept {
        if (dst) static_cast<std::optional<T>*>(dst)->emplace(std::move(*static_cast<T*>(src)));
    }
    static void destroy_chan(ChanBase* b) noexcept {
        auto* c = static_cast<Chan*>(b);
        std::size_t n = c->qcount.load(std::memory_order_relaxed);
        for (std::size_t i = 0, x = c->recvx; i < n; ++i, x = (x + 1) % c->cap)
            std::destroy_at(slot(c, x));
        c->~Chan();
        ::operator delete(static_cast<void*>(c), align);
    }
};

// dequeue() pops the first waiter that can still be committed: a waiter of a select that
// another case already won is dropped (dequeue in chan.go).
inline Waiter* dequeue(WaitQueue& q) noexcept {
    while (Waiter* w = q.pop_front()) {
        if (w->select) {
            std::uint32_t expected = 0;
            if (!w->select->done.compare_exchange_strong(expected, 1, std::memory_order_acq_rel))
                continue;
            w->select->winner = w;
        }
        return w;
    }
    return nullptr;
}

// remove_waiter() unlinks w if it is still queued (a waker may have dropped it already).
inline void remove_waiter(WaitQueue& q, Waiter* w) noexcept {
    if (!w->prev && !w->next && q.front() != w) return;
    q.remove(w);
}

// block_forever() parks the caller for good: a nil channel, or select() with no cases.
[[noreturn]] inline void block_forever() {
    for (;;) {
        auto none = [] {};
        Scheduler::instance().park(make_unlock(none));
    }
}

// send_to() completes a send to receiver w, found in recvq (send in chan.go). Unlocks c.
inline void send_to(ChanBase* c, Waiter* w, void* src) noexcept {
    c->hand(w->elem, src);
    w->success = true;
    c->lock.unlock();
    wake_parker(w->parker);
}

// take_from_sender() moves a value to dst from sender w, found in sendq, with c locked.
inline void take_from_sender(ChanBase* c, Waiter* w, void* dst) noexcept {
    if (c->cap == 0) {
        c->hand(dst, w->elem);
    } else {
        // The buffer is full: take its head, and put the sender's value in the freed slot.
        c->buf_take(c, c->recvx, dst);
        c->buf_put(c, c->recvx, w->elem);
        c->recvx = (c->recvx + 1) % c->cap;
        c->sendx = c->recvx;
    }
    w->success = true;
}

// recv_from() completes a receive from sender w, found in sendq (recv in chan.go). Unlocks c.
inline void recv_from(ChanBase* c, Waiter* w, void* dst) noexcept {
    take_from_sender(c, w, dst);
    c->lock.unlock();
    wake_parker(w->parker);
}

inline void buf_send(ChanBase* c, void* src) noexcept {
    c->buf_put(c, c->sendx, src);
    c->sendx = (c->sendx + 1) % c->cap;
    c->qcount.store(c->qcount.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
}

inline void buf_recv(ChanBase* c, void* dst) noexcept {
    c->buf_take(c, c->recvx, dst);
    c->recvx = (c->recvx + 1) % c->cap;
    c->qcount.store(c->qcount.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
}

// chansend() sends *src (moving from it), parking if block. Returns false only when !block and
// the send would have blocked. Throws ChannelClosed on a closed channel (chansend in chan.go).
inline bool chansend(ChanBase* c, void* src, bool block) {
    SyncOp op(c);
    if (!c) {
        if (!block) return false;
        block_forever();
    }
    // Fast path: a non-blocking send on an open channel that is full fails without the lock.
    // closed is read after the fullness check: if the channel was open and full at the first
    // read, it was full and open at one instant, and failing is a correct outcome.
    if (!block && !c->closed.load(std::memory_order_relaxed) && c->send_would_block())
        return false;

    c->lock.lock();
    acquire_from(c);
    if (c->closed.load(std::memory_order_relaxed)) {
        c->lock.unlock();
        throw ChannelClosed("send on closed channel");
    }
    if (Waiter* w = dequeue(c->recvq)) {
        send_to(c, w, src);
        return true;
    }
    if (c->qcount.load(std::memory_order_relaxed) < c->cap) {
        buf_send(c, src);
        c->lock.unlock();
        return true;
    }
    if (!block) {
        c->lock.unlock();
        return false;
    }
    Waiter w;
    w.parker = current_parker();
    w.elem = src;
    c->sendq.push_back(&w);
    park_on(c->lock, w);
    if (!w.success) throw ChannelClosed("send on closed channel");
    return true;
}

// chanrecv() receives into *dst (a std::optional<T>*, may be null to discard), parking if
// block. Returns {selected, received}: selected is false only when !block and the receive would
// have blocked; received is false when the channel is closed and drained (chanrecv in chan.go).
struct RecvResult {
    bool selected;
    bool received;
};
inline RecvResult chanrecv(ChanBase* c, void* dst, bool block) {
    SyncOp op(c);
    if (!c) {
        if (!block) return {false, false};
        block_forever();
    }
    // Fast path: a non-blocking receive from an empty channel. If it was empty and then found
    // open, it was empty and open at one instant: fail. If it is closed, recheck emptiness,
    // since a value may have arrived between the two reads and must still be delivered.
    if (!block && c->recv_would_block()) {
        if (!c->closed.load(std::memory_order_acquire)) return {false, false};
        if (c->recv_would_block()) {
            acquire_from(c);  // the close happens before
            return {true, false};
        }
    }

    c->lock.lock();
    acquire_from(c);
    if (c->closed.load(std::memory_order_relaxed) && c->qcount.load(std::memory_order_relaxed) == 0) {
        c->lock.unlock();
        return {true, false};
    }
    if (Waiter* w = dequeue(c->sendq)) {
        recv_from(c, w, dst);
        return {true, true};
    }
    if (c->qcount.load(std::memory_order_relaxed) > 0) {
        buf_recv(c, dst);
        c->lock.unlock();
        return {true, true};
    }
    if (!block) {
        c->lock.unlock();
        return {false, false};
    }
    Waiter w;
    w.parker = current_parker();
    w.elem = dst;
    c->recvq.push_back(&w);
    park_on(c->lock, w);
    return {true, w.success};
}

// closechan() closes c and wakes every waiter: receivers see the close, senders throw.
inline void closechan(ChanBase* c) {
    SyncOp op(c);
    if (!c) throw ChannelClosed("close of nil channel");
    c->lock.lock();
    acquire_from(c);
    if (c->closed.load(std::memory_order_relaxed)) {
        c->lock.unlock();
        throw ChannelClosed("close of closed channel");
    }
    c->closed.store(true, std::memory_order_release);
    Waiter* wake = nullptr;  // gathered through Waiter::next, readied after the unlock
    for (WaitQueue* q : {&c->recvq, &c->sendq}) {
        while (Waiter* w = dequeue(*q)) {
            w->success = false;
            w->next = wake;
            wake = w;
        }
    }
    c->lock.unlock();
    while (wake) {
        Waiter* next = wake->next;
        wake_parker(wake->parker);
        wake = next;
    }
}

// ---- select ----

struct SelectCase {
    ChanBase* c = nullptr;   // nullptr: a nil channel, never ready
    void* elem = nullptr;    // send: T* to move from; recv: std::optional<T>* or nullptr
    bool is_send = false;
};

inline void sel_lock(const SelectCase* cases, const std::uint16_t* lockorder, int n) noexcept {
    ChanBase* prev = nullptr;
    for (int i = 0; i < n; ++i) {
        ChanBase* c = cases[lockorder[i]].c;
        if (c != prev) c->lock.lock();
        prev = c;
    }
}

inline void sel_unlock(const SelectCase* cases, const std::uint16_t* lockorder, int n) noexcept {
    // Unlock in reverse, skipping repeats, so no lock is used after it was released.
    for (int i = n - 1; i >= 0; --i) {
        ChanBase* c = cases[lockorder[i]].c;
        if (i > 0 && cases[lockorder[i - 1]].c == c) continue;
        c->lock.unlock();
    }
}

struct SelectResult {
    int index;      // the case that ran, or -1 when none was ready and !block
    bool received;  // for a receive case: a value came (false: closed)
};

// selectgo() runs a select over n cases (n <= 65535). waiters and order (2n entries) are
// scratch space from the caller's stack. Throws ChannelClosed when a send case on a closed
// channel is chosen.
inline SelectResult selectgo(SelectCase* cases, Waiter* waiters, std::uint16_t* order, int n,
                             bool block) {
    // For the race detector, a SyncOp on every channel in it (see platform.hpp).
    for (int i = 0; i < n; ++i)
        if (cases[i].c) hb_release(cases[i].c);
    RuntimeSection rs;
    std::uint16_t* pollorder = order;
    std::uint16_t* lockorder = order + n;

    // Random poll order over the non-nil cases (Fisher-Yates, as Go's inside-out shuffle).
    int norder = 0;
    for (int i = 0; i < n; ++i) {
        if (!cases[i].c) continue;
        int j = static_cast<int>(fastrandn(static_cast<std::uint32_t>(norder + 1)));
        pollorder[norder] = pollorder[j];
        pollorder[j] = static_cast<std::uint16_t>(i);
        ++norder;
    }
    if (norder == 0) {
        if (!block) return {-1, false};
        block_forever();
    }
    // Lock order: by channel address (insertion sort: selects are small).
    for (int i = 0; i < norder; ++i) {
        std::uint16_t x = pollorder[i];
        int j = i;
        while (j > 0 && cases[lockorder[j - 1]].c > cases[x].c) {
            lockorder[j] = lockorder[j - 1];
            --j;
        }
        lockorder[j] = x;
    }

    sel_lock(cases, lockorder, norder);
    for (int k = 0; k < norder; ++k) acquire_from(cases[lockorder[k]].c);

    // Pass 1: look for a case that can proceed now.
    for (int k = 0; k < norder; ++k) {
        int i = pollorder[k];
        SelectCase& sc = cases[i];
        ChanBase* c = sc.c;
        if (sc.is_send) {
            if (c->closed.load(std::memory_order_relaxed)) {
                sel_unlock(cases, lockorder, norder);
                throw ChannelClosed("send on closed channel");
            }
            if (Waiter* w = dequeue(c->recvq)) {
                c->hand(w->elem, sc.elem);
                w->success = true;
                sel_unlock(cases, lockorder, norder);
                wake_parker(w->parker);
                return {i, false};
            }
            if (c->qcount.load(std::memory_order_relaxed) < c->cap) {
                buf_send(c, sc.elem);
                sel_unlock(cases, lockorder, norder);
                return {i, false};
            }
        } else {
            if (Waiter* w = dequeue(c->sendq)) {
                take_from_sender(c, w, sc.elem);
                sel_unlock(cases, lockorder, norder);
                wake_parker(w->parker);
                return {i, true};
            }
            if (c->qcount.load(std::memory_order_relaxed) > 0) {
                buf_recv(c, sc.elem);
                sel_unlock(cases, lockorder, norder);
                return {i, true};
            }
            if (c->closed.load(std::memory_order_relaxed)) {
                sel_unlock(cases, lockorder, norder);
                return {i, false};
            }
        }
    }
    if (!block) {
        sel_unlock(cases, lockorder, norder);
        return {-1, false};
    }

    // Pass 2: queue a waiter on every channel, then park.
    SelectState state;
    Parker* self = current_parker();
    for (int k = 0; k < norder; ++k) {
        int i = lockorder[k];
        Waiter& w = waiters[i];
        w = Waiter{};
        w.parker = self;
        w.elem = cases[i].elem;
        w.select = &state;
        w.case_index = i;
        if (cases[i].is_send) cases[i].c->sendq.push_back(&w);
        else cases[i].c->recvq.push_back(&w);
    }
    struct Unlocker {
        const SelectCase* cases;
        const std::uint16_t* lockorder;
        int n;
        void operator()() const noexcept { sel_unlock(cases, lockorder, n); }
    } unlocker{cases, lockorder, norder};
    Scheduler::instance().park(make_unlock(unlocker));
    acquire_from(self);

    // Pass 3: a waker committed one case; unlink the others.
    sel_lock(cases, lockorder, norder);
    Waiter* winner = state.winner;
    for (int k = 0; k < norder; ++k) {
        int i = lockorder[k];
        Waiter* w = &waiters[i];
        if (w == winner) continue;
        remove_waiter(cases[i].is_send ? cases[i].c->sendq : cases[i].c->recvq, w);
    }
    sel_unlock(cases, lockorder, norder);
    int i = winner->case_index;
    if (cases[i].is_send) {
        if (!winner->success) throw ChannelClosed("send on closed channel");
        return {i, false};
    }
    return {i, winner->success};
}

}  // namespace goro::detail
