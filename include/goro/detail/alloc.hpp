// goro/detail/alloc.hpp: the block cache for goroutine control blocks and closures.
//
// go() allocates a G with its closure on one thread and the G is freed on whichever worker it
// exits on: the producer/consumer pattern that general-purpose allocators serve worst (glibc
// sends every cross-thread free through its arena lock). Blocks of four size classes are kept
// in per-thread caches and move between threads in batches of 64 through a locked global
// depot, so the lock is taken once per 64 goroutines (tcmalloc's transfer cache, Go's gfget
// and gfput). The depot keeps at most a bounded number of batches and frees the rest.
#pragma once

#include "goro/detail/platform.hpp"

#include <mutex>
#include <new>

namespace goro::detail {

class BlockCache {
public:
    static constexpr std::size_t classes = 4;
    static constexpr std::size_t batch = 64;

    static constexpr int size_class(std::size_t n) noexcept {
        return n <= 128 ? 0 : n <= 256 ? 1 : n <= 512 ? 2 : n <= 1024 ? 3 : -1;
    }
    static constexpr std::size_t class_size(int c) noexcept { return std::size_t{128} << c; }

    // allocate() returns a block of class c's size.
    static void* allocate(int c) {
#if GORO_TSAN
        // ThreadSanitizer learns of reuse from the allocator only: a recycled block would
        // carry the previous goroutine's accesses to its closure into the next one's.
        return ::operator new(class_size(c));
#endif
        Local& l = local();
        Block* b = l.head[c];
        if (GORO_UNLIKELY(!b)) {
            b = depot().take(c);
            if (!b) return ::operator new(class_size(c));
            // Count the batch rather than assume it is full: a thread that exits hands what
            // it has left to the depot as one short batch, and a count above the true length
            // made a later flush() walk off the end of the list.
            std::size_t n = 0;
            for (Block* p = b; p; p = p->next) ++n;
            l.count[c] = n;
        }
        l.head[c] = b->next;
        --l.count[c];
        return b;
    }

    // deallocate() returns a block of class c to this thread's cache.
    static void deallocate(void* p, int c) noexcept {
#if GORO_TSAN
        ::operator delete(p, class_size(c));
        return;
#endif
        Local& l = local();
        auto* b = static_cast<Block*>(p);
        b->next = l.head[c];
        l.head[c] = b;
        if (GORO_UNLIKELY(++l.count[c] >= 2 * batch)) l.flush(c, batch);
    }

private:
    struct Block {
        Block* next;
        Block* next_batch;  // in the depot: the first block of the following batch
    };

    class Depot {
    public:
        Block* take(int c) noexcept {
            std::lock_guard<Lock> g(mu_);
            Block* b = batches_[c];
            if (b) {
                batches_[c] = b->next_batch;
                --n_[c];
            }
            return b;
        }
        void put(int c, Block* first) noexcept {
            {
                std::lock_guard<Lock> g(mu_);
                if (n_[c] < max_batches) {
                    first->next_batch = batches_[c];
                    batches_[c] = first;
                    ++n_[c];
                    return;
                }
            }
            while (first) {
                Block* next = first->next;
                ::operator delete(first);
                first = next;
            }
        }

    private:
        static constexpr std::size_t max_batches = 4096;  // 256 Ki blocks per class
        Lock mu_;
        Block* batches_[classes] = {};  // guarded by mu_
        std::size_t n_[classes] = {};   // guarded by mu_
    };

    struct Local {
        Block* head[classes] = {};
        std::size_t count[classes] = {};
        // flush() moves n blocks of class c to the depot as one batch.
        void flush(int c, std::size_t n) noexcept {
            Block* first = head[c];
            Block* last = first;
            for (std::size_t i = 1; i < n; ++i) last = last->next;
            head[c] = last->next;
            last->next = nullptr;
            count[c] -= n;
            depot().put(c, first);
        }
        ~Local() {
            for (std::size_t c = 0; c < classes; ++c)
                while (count[c] > 0) flush(static_cast<int>(c), std::min(count[c], batch));
        }
    };

    static Depot& depot() noexcept {
        static Depot* d = new Depot();  // never destroyed: threads may outlive statics
        return *d;
    }
    static Local& local() noexcept {
        static thread_local Local l;
        return l;
    }
};

}  // namespace goro::detail
