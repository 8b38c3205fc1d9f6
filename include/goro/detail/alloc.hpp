// goro/detail/alloc.hpp: the block cache for goroutine control blocks and closures.
//
// go() allocates a G with its closure on one thread and the G is freed on whichever worker it
// exits on: the producer/consumer pattern that general-purpose allocators serve worst (glibc
// sends every cross-thread free through its arena lock). Blocks of four size classes are kept
// in per-thread caches and move between threads in batches of 64 through a locked global
// depot, so the lock is taken once per 64 goroutines (tcmalloc's transfer cache, Go's gfget
// and gfput). The depot keeps at most a bounded number of blocks and frees the rest.
//
// A cache is an array of pointers, not a list threaded through the blocks (Bonwick's
// magazines): a block freed on another worker is cold in the allocating thread's cache, and a
// list would have to be walked, one dependent miss per block, to be counted or popped. With
// an array the next blocks' addresses are known, and allocate() prefetches a few ahead, so
// the misses of a spawning loop overlap instead of stalling it one by one. Measured: a plain
// thread spawning 1M goroutines spent ~45% of its time walking fresh batches.
#pragma once

#include "goro/detail/platform.hpp"

#include <algorithm>
#include <cstring>
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
        std::size_t n = l.n[c];
        if (GORO_UNLIKELY(n == 0)) {
            n = depot().take(c, l.slot[c]);
            if (n == 0) return ::operator new(class_size(c));
            for (std::size_t i = 1; i <= std::min(n, prefetch_ahead); ++i)
                prefetch_for_write(l.slot[c][n - i]);
        }
        --n;
        l.n[c] = n;
        if (n >= prefetch_ahead) prefetch_for_write(l.slot[c][n - prefetch_ahead]);
        return l.slot[c][n];
    }

    // deallocate() returns a block of class c to this thread's cache.
    static void deallocate(void* p, int c) noexcept {
#if GORO_TSAN
        ::operator delete(p, class_size(c));
        return;
#endif
        Local& l = local();
        std::size_t n = l.n[c];
        if (GORO_UNLIKELY(n == 2 * batch)) {
            // Hand the older half on: the newer blocks are the warmer ones.
            depot().put(c, l.slot[c], batch);
            std::memmove(l.slot[c], l.slot[c] + batch, batch * sizeof(void*));
            n = batch;
        }
        l.slot[c][n] = p;
        l.n[c] = n + 1;
    }

private:
    // How many blocks ahead allocate() prefetches: a spawn takes some tens of nanoseconds, a
    // line from another core's cache about a hundred.
    static constexpr std::size_t prefetch_ahead = 4;

    // Depot is a stack of free blocks per class: batches are pushed and popped whole, the
    // most recently freed (the warmest) first.
    class Depot {
    public:
        // take() moves up to one batch of class c into out and returns how many.
        std::size_t take(int c, void** out) noexcept {
            std::lock_guard<Lock> g(mu_);
            std::size_t n = std::min(n_[c], batch);
            if (n == 0) return 0;  // blocks_[c] may not exist yet
            n_[c] -= n;
            std::memcpy(out, blocks_[c] + n_[c], n * sizeof(void*));
            return n;
        }
        // put() moves n blocks of class c in, or frees them if the depot is full.
        void put(int c, void* const* in, std::size_t n) noexcept {
            {
                std::lock_guard<Lock> g(mu_);
                if (n_[c] + n <= max_blocks) {
                    if (!blocks_[c]) blocks_[c] = new (std::nothrow) void*[max_blocks];
                    if (blocks_[c]) {
                        std::memcpy(blocks_[c] + n_[c], in, n * sizeof(void*));
                        n_[c] += n;
                        return;
                    }
                }
            }
            for (std::size_t i = 0; i < n; ++i) ::operator delete(in[i]);
        }

    private:
        // 256 Ki blocks per class at most (32-256 MiB); the arrays' pages are touched only as
        // they fill.
        static constexpr std::size_t max_blocks = 4096 * batch;
        Lock mu_;
        void** blocks_[classes] = {};   // guarded by mu_; allocated on first use
        std::size_t n_[classes] = {};   // guarded by mu_
    };

    struct Local {
        void* slot[classes][2 * batch];
        std::size_t n[classes] = {};
        ~Local() {
            for (std::size_t c = 0; c < classes; ++c) {
                for (std::size_t i = 0; i < n[c]; i += batch)
                    depot().put(static_cast<int>(c), slot[c] + i, std::min(batch, n[c] - i));
                n[c] = 0;
            }
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
