// goro/context.hpp: cancellation, deadlines and request-scoped values (Go's context package).
//
//     auto [ctx, cancel] = goro::with_timeout(goro::background(), 2s);
//     goro::go([ctx] {
//         for (;;) {
//             if (goro::select(goro::recv(ctx), goro::default_case()) == 0) return;
//             work();
//         }
//     });
//     ...
//     cancel();   // idempotent; always call it to release the context from its parent
//
// Cancelling a context cancels every context derived from it; done() is a channel that is
// closed at that moment, and err() says why (goro::errc::canceled or deadline_exceeded). A
// child's deadline is never later than its parent's. A Context is a cheap shared handle.
//
// The tree (mirrors context.go): a cancellable context registers with its nearest cancellable
// ancestor, which holds it until either is cancelled; cancelling removes a child from its parent,
// so a long-lived parent does not accumulate dead children. A deadline is a runtime timer that
// cancels the context when it fires.
//
// Depth. Nothing walks the tree by recursion, since a goroutine's stack is small and fixed
// (Go's grows): lookups read what each node copied from its parent when it was made, or loop
// up the chain (value); cancel() works through a list of descendants; dropping a chain unlinks
// it a node at a time. A chain of 100,000 layers is as safe as one of ten.
//
// Polling. recv(ctx) is the select case on done() that makes no handle to the channel: polling
// it costs what polling a channel costs, where recv(ctx.done()) adds an atomic increment and
// decrement of the channel's reference count, a cache line that every poller shares.
#pragma once

#include "goro/channel.hpp"
#include "goro/select.hpp"
#include "goro/time.hpp"

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <unordered_set>
#include <utility>
#include <variant>
#include <vector>

namespace goro {

// errc are the errors of a done context; they form the "context" error category.
enum class errc {
    canceled = 1,           // context.Canceled
    deadline_exceeded = 2,  // context.DeadlineExceeded
};

inline const std::error_category& context_category() noexcept {
    struct Category final : std::error_category {
        const char* name() const noexcept override { return "context"; }
        std::string message(int c) const override {
            switch (static_cast<errc>(c)) {
                case errc::canceled: return "context canceled";
                case errc::deadline_exceeded: return "context deadline exceeded";
            }
            return "unknown context error";
        }
        std::error_condition default_error_condition(int c) const noexcept override {
            if (static_cast<errc>(c) == errc::deadline_exceeded)
                return std::make_error_condition(std::errc::timed_out);
            if (static_cast<errc>(c) == errc::canceled)
                return std::make_error_condition(std::errc::operation_canceled);
            return {c, *this};
        }
    };
    static const Category category;
    return category;
}

inline std::error_code make_error_code(errc e) noexcept {
    return {static_cast<int>(e), context_category()};
}

}  // namespace goro

template <>
struct std::is_error_code_enum<goro::errc> : std::true_type {};

namespace goro {

// ContextKey<T> identifies a context value by its address; the label is for debugging.
//
//     static const goro::ContextKey<int> user_id{"user_id"};
//     auto ctx = goro::with_value(parent, user_id, 12345);
//     if (const int* id = ctx.value(user_id)) ...
template <class T>
class ContextKey {
public:
    explicit constexpr ContextKey(const char* label = "") noexcept : label_(label) {}
    ContextKey(const ContextKey&) = delete;
    ContextKey& operator=(const ContextKey&) = delete;
    const char* label() const noexcept { return label_; }

private:
    const char* label_;
};

namespace detail {

class CancelCtx;

// CtxNode is one node of a context tree. A node is immutable once made, except for a
// CancelCtx's state behind its lock. What done(), err(), deadline() and nearest_cancel() need
// is copied from the parent into every node when it is made, and value() walks the chain in a
// loop (mirrors value in context.go), so that no lookup recurses through a deep chain: a frame
// per layer overflows a goroutine's stack within some thousands of layers. Dropping the last
// reference to a chain does not recurse either (drop_chain).
class CtxNode {
public:
    explicit CtxNode(std::shared_ptr<const CtxNode> parent) noexcept
        : parent_(std::move(parent)),
          cancel_(parent_ ? parent_->cancel_ : nullptr),
          deadline_(parent_ ? parent_->deadline_ : std::nullopt) {}
    CtxNode(const CtxNode&) = delete;
    CtxNode& operator=(const CtxNode&) = delete;
    virtual ~CtxNode() { drop_chain(std::move(parent_)); }

    // nearest_cancel() is the closest cancellable node at or above this one (parentCancelCtx);
    // nullptr if the chain goes up to background without one.
    CancelCtx* nearest_cancel() const noexcept { return cancel_; }
    std::optional<Clock::time_point> deadline() const noexcept { return deadline_; }
    // value() is what the nearest node at or above this one stores under key; nullptr if none.
    const void* value(const void* key) const noexcept {
        for (const CtxNode* n = this; n; n = n->parent_.get())
            if (n->key_ == key) return n->value_;
        return nullptr;
    }

protected:
    std::shared_ptr<const CtxNode> parent_;
    // Set by the constructors (this one and the derived ones), read-only afterwards.
    CancelCtx* cancel_;                          // a CancelCtx's is itself
    std::optional<Clock::time_point> deadline_;  // the nearest TimerCtx's
    const void* key_ = nullptr;                  // a ValueCtx's key and value
    const void* value_ = nullptr;

private:
    static void drop_chain(std::shared_ptr<const CtxNode> p) noexcept;
};

// drop_chain() drops p without recursing up the chain. Were p the last reference to its node,
// the node's destructor would drop its parent from inside, and so on, a frame per layer. So
// while p looks like the last reference, the loop first takes one to the parent (so that the
// node's destructor drops a reference that is not the last) and then carries on with the
// parent. use_count() is only a hint, and may be stale: a wrong guess costs one level of
// nesting, never correctness, as the node is only read here and freed by the shared_ptr.
inline void CtxNode::drop_chain(std::shared_ptr<const CtxNode> p) noexcept {
    while (p && p.use_count() == 1) {
        std::shared_ptr<const CtxNode> next = p->parent_;
        p.reset();
        p = std::move(next);
    }
}

class CancelCtx : public CtxNode, public std::enable_shared_from_this<CancelCtx> {
public:
    explicit CancelCtx(std::shared_ptr<const CtxNode> parent) : CtxNode(std::move(parent)) {
        cancel_ = this;
    }

    // done() is closed when the context is cancelled; it lives as long as the node.
    const Channel<std::monostate>& done() const noexcept { return done_; }
    std::error_code err() const {
        std::lock_guard<Lock> g(mu_);
        return err_;
    }

    // attach() registers this new context with its nearest cancellable ancestor, or cancels it
    // at once if that ancestor is already done (propagateCancel).
    void attach() {
        CancelCtx* p = parent_ ? parent_->nearest_cancel() : nullptr;
        if (!p) return;
        std::error_code perr;
        {
            std::lock_guard<Lock> g(p->mu_);
            if (!p->err_) {
                p->children_.insert(shared_from_this());
                ancestor_ = p;
                return;
            }
            perr = p->err_;
        }
        cancel(false, perr);
    }

    // cancel() closes done, records why, cancels the descendants, and with remove_from_parent
    // unregisters from the ancestor. The descendants are cancelled from a work list rather than
    // by recursion, so a chain of any depth is cancelled on any stack.
    void cancel(bool remove_from_parent, std::error_code why) {
        std::vector<std::shared_ptr<CancelCtx>> work;
        CancelCtx* ancestor = nullptr;
        if (!cancel_one(why, work, &ancestor)) return;
        while (!work.empty()) {
            std::shared_ptr<CancelCtx> c = std::move(work.back());
            work.pop_back();
            c->cancel_one(why, work, nullptr);
        }
        if (remove_from_parent && ancestor) {
            std::shared_ptr<CancelCtx> keep = shared_from_this();  // the erase may drop the last ref
            std::lock_guard<Lock> g(ancestor->mu_);
            ancestor->children_.erase(keep);
        }
    }

protected:
    // disarm_locked() runs under mu_ when the context is cancelled: a TimerCtx stops its timer
    // and hands back the timer's reference to itself, which is dropped once mu_ is unlocked.
    virtual std::shared_ptr<CancelCtx> disarm_locked() { return nullptr; }

    mutable Lock mu_;      // guards err_, children_, ancestor_ and TimerCtx::self_
    std::error_code err_;  // guarded by mu_

private:
    // cancel_one() cancels this node alone, adding its children to work; false if it was
    // cancelled already (cancel functions are idempotent).
    bool cancel_one(std::error_code why, std::vector<std::shared_ptr<CancelCtx>>& work,
                    CancelCtx** ancestor) {
        std::unordered_set<std::shared_ptr<CancelCtx>> children;
        std::shared_ptr<CancelCtx> timer_ref;
        {
            std::lock_guard<Lock> g(mu_);
            if (err_) return false;
            err_ = why;
            children.swap(children_);
            CancelCtx* a = std::exchange(ancestor_, nullptr);
            if (ancestor) *ancestor = a;
            timer_ref = disarm_locked();
        }
        done_.close();
        while (!children.empty())
            work.push_back(std::move(children.extract(children.begin()).value()));
        return true;
    }

    Channel<std::monostate> done_;
    std::unordered_set<std::shared_ptr<CancelCtx>> children_;  // guarded by mu_
    CancelCtx* ancestor_ = nullptr;  // registered with; it holds us, we hold it through parent_
};

class TimerCtx final : public CancelCtx {
public:
    TimerCtx(std::shared_ptr<const CtxNode> parent, Clock::time_point deadline)
        : CancelCtx(std::move(parent)) {
        deadline_ = deadline;
    }

    // arm() starts the deadline timer; the timer holds a reference until it fires or is stopped.
    void arm() {
        std::lock_guard<Lock> g(mu_);
        if (err_) return;
        self_ = std::static_pointer_cast<TimerCtx>(shared_from_this());
        timer_.when = when(*deadline_);  // time_point::max() is a timer that never fires
        timer_.arg = this;
        timer_.f = [](Timer* t) {
            auto* self = static_cast<TimerCtx*>(t->arg);
            std::shared_ptr<TimerCtx> keep;
            {
                std::lock_guard<Lock> g(self->mu_);
                keep = std::move(self->self_);
            }
            self->cancel(true, errc::deadline_exceeded);
        };
        Scheduler::instance().timer_start(&timer_);
    }

private:
    std::shared_ptr<CancelCtx> disarm_locked() override {
        if (self_ && Scheduler::instance().timer_stop(&timer_)) return std::move(self_);
        return nullptr;
    }

    Timer timer_;
    std::shared_ptr<TimerCtx> self_;  // the pending timer's reference; guarded by mu_
};

template <class T>
class ValueCtx final : public CtxNode {
public:
    ValueCtx(std::shared_ptr<const CtxNode> parent, const void* key, T value)
        : CtxNode(std::move(parent)), v_(std::move(value)) {
        key_ = key;
        value_ = &v_;
    }

private:
    T v_;
};

}  // namespace detail

// Context carries a cancellation signal, a deadline and values across goroutines
// (context.Context). Copies share the same context. A default-constructed Context is
// background().
class Context {
public:
    Context() noexcept = default;
    explicit Context(std::shared_ptr<const detail::CtxNode> node) noexcept : node_(std::move(node)) {}

    // done() is closed when the context is cancelled; background's is nil and never closes.
    // To poll it in a loop, recv(ctx) is cheaper than recv(ctx.done()) (see recv below).
    RecvChannel<std::monostate> done() const {
        const detail::CancelCtx* c = cancel_ctx();
        return c ? RecvChannel<std::monostate>(c->done()) : RecvChannel<std::monostate>();
    }
    // err() is empty until done() is closed, then errc::canceled or errc::deadline_exceeded.
    std::error_code err() const {
        const detail::CancelCtx* c = cancel_ctx();
        return c ? c->err() : std::error_code();
    }
    // deadline() is when the context will be cancelled by itself, if ever.
    std::optional<Clock::time_point> deadline() const {
        return node_ ? node_->deadline() : std::nullopt;
    }
    // value() finds the value stored under key by this context or an ancestor; nullptr if none.
    template <class T>
    const T* value(const ContextKey<T>& key) const {
        return node_ ? static_cast<const T*>(node_->value(&key)) : nullptr;
    }

    const std::shared_ptr<const detail::CtxNode>& node() const noexcept { return node_; }

private:
    const detail::CancelCtx* cancel_ctx() const noexcept {
        return node_ ? node_->nearest_cancel() : nullptr;
    }

    std::shared_ptr<const detail::CtxNode> node_;  // nullptr is background
};

namespace detail {
// done_core() is ctx's done channel, not retained: the context keeps it alive.
inline ChanBase* done_core(const Context& ctx) noexcept {
    const CancelCtx* c = ctx.node() ? ctx.node()->nearest_cancel() : nullptr;
    return c ? c->done().core() : nullptr;
}
}  // namespace detail

// recv(ctx) is the select case `<-ctx.Done()`, optionally with a function to run when it is
// chosen: recv(ctx.done()) without making a handle to the channel, whose reference count is an
// atomic increment and decrement on a cache line that every poller of the context shares.
//
//     for (;;) {
//         if (goro::select(goro::recv(ctx), goro::default_case()) == 0) return ctx.err();
//         step();
//     }
//
// Like every case, it refers to its argument: build it inside the select() call.
inline auto recv(const Context& ctx) {
    return detail::RecvCase<std::monostate, detail::NoAction>{detail::done_core(ctx), {}, {}};
}
template <class F>
auto recv(const Context& ctx, F&& f) {
    return detail::RecvCase<std::monostate, std::decay_t<F>>{detail::done_core(ctx),
                                                             std::forward<F>(f), {}};
}

// CancelFunc cancels its context; calling it again does nothing.
using CancelFunc = std::function<void()>;

// background() is the root context: never cancelled, no deadline, no values.
inline Context background() noexcept { return Context(); }

namespace detail {
inline std::pair<Context, CancelFunc> cancellable(std::shared_ptr<CancelCtx> c) {
    c->attach();
    CancelFunc cancel = [c]() { c->cancel(true, errc::canceled); };
    return {Context(std::move(c)), std::move(cancel)};
}
}  // namespace detail

// with_cancel() derives a context that is cancelled by the returned function or with parent.
inline std::pair<Context, CancelFunc> with_cancel(const Context& parent) {
    return detail::cancellable(std::make_shared<detail::CancelCtx>(parent.node()));
}

// with_deadline() derives a context that is also cancelled at t (or at the parent's earlier
// deadline, which it then keeps).
inline std::pair<Context, CancelFunc> with_deadline(const Context& parent, Clock::time_point t) {
    if (auto pd = parent.deadline(); pd && *pd <= t) return with_cancel(parent);
    auto c = std::make_shared<detail::TimerCtx>(parent.node(), t);
    auto result = detail::cancellable(c);
    if (Clock::now() >= t) c->cancel(true, errc::deadline_exceeded);
    else c->arm();
    return result;
}

// with_timeout() is with_deadline(parent, now + d); now + duration::max() is never.
inline std::pair<Context, CancelFunc> with_timeout(const Context& parent, Clock::duration d) {
    return with_deadline(parent, detail::deadline_after(d));
}

// with_value() derives a context that carries value under key.
template <class T>
Context with_value(const Context& parent, const ContextKey<T>& key, T value) {
    return Context(std::make_shared<detail::ValueCtx<T>>(parent.node(), &key, std::move(value)));
}

}  // namespace goro
