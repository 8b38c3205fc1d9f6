// goro/channel.hpp: typed channels (Go's chan T, chan<- T, <-chan T).
//
//     goro::Channel<int> ch;            // make(chan int)
//     goro::go([ch] { ch.send(42); });  // go func() { ch <- 42 }()
//     std::optional<int> v = ch.recv(); // v, ok := <-ch
//
//     goro::Channel<std::string> jobs(100);   // make(chan string, 100)
//     for (std::string j : jobs) { ... }      // for j := range jobs (values are moved out:
//                                             // use T or auto&&, not auto&)
//
// A Channel is a handle: copies share the channel, and every operation is const, so a lambda can
// capture it by value. Values are delivered FIFO; an unbuffered send returns once a receiver has
// the value. Sending on a closed channel, and closing a closed or nil channel, throw
// goro::ChannelClosed. Receiving from a closed channel drains its buffer, then yields nullopt.
// The nil channel (Channel<T>::nil()) blocks forever and is never ready in select.
//
// T may be move-only and may be an empty type. Values are moved while the channel's lock is
// held, so T's move constructor should not throw (if it does, the process terminates).
// The implementation is in detail/chan.hpp.
#pragma once

#include "goro/detail/chan.hpp"

#include <cstddef>
#include <iterator>
#include <optional>

namespace goro {

template <class T> class Channel;
template <class T> class SendChannel;
template <class T> class RecvChannel;

namespace detail {

// ChanHandle is the shared, reference-counted handle under the three channel types, with the
// members all three have.
template <class T>
class ChanHandle {
public:
    using value_type = T;

    // size() is the number of buffered values (len(ch)); capacity() is cap(ch).
    std::size_t size() const noexcept {
        return c_ ? c_->qcount.load(std::memory_order_relaxed) : 0;
    }
    std::size_t capacity() const noexcept { return c_ ? c_->cap : 0; }
    ChanBase* core() const noexcept { return c_; }

protected:
    ChanHandle() noexcept = default;
    explicit ChanHandle(ChanBase* c) noexcept : c_(c) {}
    ChanHandle(const ChanHandle& o) noexcept : c_(o.c_) {
        if (c_) c_->retain();
    }
    ChanHandle(ChanHandle&& o) noexcept : c_(std::exchange(o.c_, nullptr)) {}
    ChanHandle& operator=(const ChanHandle& o) noexcept {
        if (o.c_) o.c_->retain();  // first: o may be *this
        if (c_) c_->release();
        c_ = o.c_;
        return *this;
    }
    ChanHandle& operator=(ChanHandle&& o) noexcept {
        if (this != &o) {
            if (c_) c_->release();
            c_ = std::exchange(o.c_, nullptr);
        }
        return *this;
    }
    ~ChanHandle() {
        if (c_) c_->release();
    }

private:
    ChanBase* c_ = nullptr;
};

template <class T>
void chan_send(ChanBase* c, T v) {
    chansend(c, &v, true);
}

template <class T>
std::optional<T> chan_recv(ChanBase* c) {
    std::optional<T> v;
    chanrecv(c, &v, true);
    return v;
}

// RecvIterator is the input iterator behind `for (T v : ch)`: it receives until the channel is
// closed and drained.
template <class T>
class RecvIterator {
public:
    using iterator_category = std::input_iterator_tag;
    using value_type = T;
    using difference_type = std::ptrdiff_t;
    using pointer = T*;
    using reference = T&&;  // each value is received once: `for (T v : ch)` moves it out

    RecvIterator() noexcept = default;
    explicit RecvIterator(ChanBase* c) : c_(c) { ++*this; }

    T&& operator*() noexcept { return std::move(*v_); }
    T* operator->() noexcept { return &*v_; }
    RecvIterator& operator++() {
        v_.reset();
        chanrecv(c_, &v_, true);
        return *this;
    }
    void operator++(int) { ++*this; }
    friend bool operator==(const RecvIterator& a, const RecvIterator& b) noexcept {
        return !a.v_.has_value() && !b.v_.has_value();
    }

private:
    ChanBase* c_ = nullptr;
    std::optional<T> v_;
};

}  // namespace detail

// Channel<T> is a bidirectional channel (chan T).
template <class T>
class Channel : public detail::ChanHandle<T> {
public:
    // Channel() makes an unbuffered channel (make(chan T)).
    Channel() : Channel(0) {}
    // Channel(cap) makes a channel with room for cap values; 0 is unbuffered (make(chan T, cap)).
    explicit Channel(std::size_t cap) : detail::ChanHandle<T>(detail::Chan<T>::make(cap)) {}
    // nil() is the nil channel: every operation on it blocks forever; close() throws.
    static Channel nil() noexcept { return Channel(NilTag{}); }

    // send() sends v, parking until a receiver takes it or the buffer has room (ch <- v).
    // Throws ChannelClosed if the channel is closed.
    void send(T v) const { detail::chan_send<T>(this->core(), std::move(v)); }
    // recv() receives a value, parking until one is available; nullopt once the channel is
    // closed and drained (v, ok := <-ch).
    std::optional<T> recv() const { return detail::chan_recv<T>(this->core()); }
    // close() closes the channel: receivers drain what is buffered, then see nullopt; blocked
    // senders throw ChannelClosed. Throws ChannelClosed if already closed or nil.
    void close() const { detail::closechan(this->core()); }

    // begin()/end() range over received values until the channel is closed and drained.
    detail::RecvIterator<T> begin() const { return detail::RecvIterator<T>(this->core()); }
    detail::RecvIterator<T> end() const noexcept { return {}; }

    bool operator==(const Channel& o) const noexcept { return this->core() == o.core(); }

private:
    struct NilTag {};
    explicit Channel(NilTag) noexcept {}
};

// SendChannel<T> is the send-only view of a channel (chan<- T): send, close, size, capacity.
template <class T>
class SendChannel : public detail::ChanHandle<T> {
public:
    SendChannel() noexcept = default;  // the nil channel
    SendChannel(const Channel<T>& c) noexcept : detail::ChanHandle<T>(c) {}  // implicit, as in Go

    void send(T v) const { detail::chan_send<T>(this->core(), std::move(v)); }
    void close() const { detail::closechan(this->core()); }
    bool operator==(const SendChannel& o) const noexcept { return this->core() == o.core(); }
};

// RecvChannel<T> is the receive-only view of a channel (<-chan T): recv, range, size, capacity.
template <class T>
class RecvChannel : public detail::ChanHandle<T> {
public:
    RecvChannel() noexcept = default;  // the nil channel
    RecvChannel(const Channel<T>& c) noexcept : detail::ChanHandle<T>(c) {}  // implicit, as in Go

    std::optional<T> recv() const { return detail::chan_recv<T>(this->core()); }
    detail::RecvIterator<T> begin() const { return detail::RecvIterator<T>(this->core()); }
    detail::RecvIterator<T> end() const noexcept { return {}; }
    bool operator==(const RecvChannel& o) const noexcept { return this->core() == o.core(); }
};

}  // namespace goro
