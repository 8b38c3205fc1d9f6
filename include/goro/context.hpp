// goro/context.hpp: cancellation, deadlines and request-scoped values (Go's context package).
//
//     auto [ctx, cancel] = goro::with_timeout(goro::background(), 2s);
//     goro::go([ctx] {
//         for (;;) {
//             if (goro::select(goro::recv(ctx.done()), goro::default_case()) == 0) return;
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
#pragma once

#include "goro/channel.hpp"
#include "goro/time.hpp"

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <unordered_set>
#include <utility>
#include <variant>

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

// CtxNode is one node of a context tree.
class CtxNode {
public:
    explicit CtxNode(std::shared_ptr<const CtxNode> parent) noexcept : parent_(std::move(parent)) {}
    virtual ~CtxNode() = default;

    virtual RecvChannel<std::monostate> done() const {
        return parent_ ? parent_->done() : RecvChannel<std::monostate>();
    }
    virtual std::error_code err() const { return parent_ ? parent_->err() : std::error_code(); }
    virtual std::optional<Clock::time_point> deadline() const {
        return parent_ ? parent_->deadline() : std::nullopt;
    }
    virtual const void* value(const void* key) const {
        return parent_ ? parent_->value(key) : nullptr;
    }
    // nearest_cancel() is the closest cancellable node at or above this one (parentCancelCtx).
    virtual CancelCtx* nearest_cancel() const {
        return parent_ ? parent_->nearest_cancel() : nullptr;
    }

protected:
    std::shared_ptr<const CtxNode> parent_;
};

class CancelCtx : public CtxNode, public std::enable_shared_from_this<CancelCtx> {
public:
    using CtxNode::CtxNode;

    RecvChannel<std::monostate> done() const override { return done_; }
    std::error_code err() const override {
        std::lock_guard<Lock> g(mu_);
        return err_;
    }
    CancelCtx* nearest_cancel() const override { return const_cast<CancelCtx*>(this); }

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

    // cancel() closes done, records why, cancels the children, and with remove_from_parent
    // unregisters from the ancestor.
    virtual void cancel(bool remove_from_parent, std::error_code why) {
        std::unordered_set<std::shared_ptr<CancelCtx>> children;
        CancelCtx* ancestor;
        {
            std::lock_guard<Lock> g(mu_);
            if (err_) return;  // already cancelled: cancel functions are idempotent
            err_ = why;
            children.swap(children_);
            ancestor = std::exchange(ancestor_, nullptr);
        }
        done_.close();
        for (auto& c : children) c->cancel(false, why);
        if (remove_from_parent && ancestor) {
            std::shared_ptr<CancelCtx> keep = shared_from_this();  // the erase may drop the last ref
            std::lock_guard<Lock> g(ancestor->mu_);
            ancestor->children_.erase(keep);
        }
    }

protected:
    mutable Lock mu_;
    Channel<std::monostate> done_;
    std::error_code err_;                                       // guarded by mu_
    std::unordered_set<std::shared_ptr<CancelCtx>> children_;   // guarded by mu_
    CancelCtx* ancestor_ = nullptr;  // registered with; it holds us, we hold it through parent_
};

class TimerCtx final : public CancelCtx {
public:
    TimerCtx(std::shared_ptr<const CtxNode> parent, Clock::time_point deadline)
        : CancelCtx(std::move(parent)), deadline_(deadline) {}

    std::optional<Clock::time_point> deadline() const override { return deadline_; }

    // arm() starts the deadline timer; the timer holds a reference until it fires or is stopped.
    void arm() {
        std::lock_guard<Lock> g(mu_);
        if (err_) return;
        self_ = std::static_pointer_cast<TimerCtx>(shared_from_this());
        timer_.when = to_nanos(deadline_);
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

    void cancel(bool remove_from_parent, std::error_code why) override {
        CancelCtx::cancel(remove_from_parent, why);
        std::shared_ptr<TimerCtx> drop;
        std::lock_guard<Lock> g(mu_);
        if (self_ && Scheduler::instance().timer_stop(&timer_)) drop = std::move(self_);
    }

private:
    Clock::time_point deadline_;
    Timer timer_;
    std::shared_ptr<TimerCtx> self_;  // the pending timer's reference; guarded by mu_
};

template <class T>
class ValueCtx final : public CtxNode {
public:
    ValueCtx(std::shared_ptr<const CtxNode> parent, const void* key, T value)
        : CtxNode(std::move(parent)), key_(key), value_(std::move(value)) {}
    const void* value(const void* key) const override {
        return key == key_ ? &value_ : CtxNode::value(key);
    }

private:
    const void* key_;
    T value_;
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
    RecvChannel<std::monostate> done() const {
        return node_ ? node_->done() : RecvChannel<std::monostate>();
    }
    // err() is empty until done() is closed, then errc::canceled or errc::deadline_exceeded.
    std::error_code err() const { return node_ ? node_->err() : std::error_code(); }
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
    std::shared_ptr<const detail::CtxNode> node_;  // nullptr is background
};

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

// with_timeout() is with_deadline(parent, now + d).
inline std::pair<Context, CancelFunc> with_timeout(const Context& parent, Clock::duration d) {
    return with_deadline(parent, Clock::now() + d);
}

// with_value() derives a context that carries value under key.
template <class T>
Context with_value(const Context& parent, const ContextKey<T>& key, T value) {
    return Context(std::make_shared<detail::ValueCtx<T>>(parent.node(), &key, std::move(value)));
}

}  // namespace goro
