// goro/detail/stack.hpp: goroutine stacks (mirrors the role of stack.go).
//
// The model. Every goroutine gets a fixed reservation of virtual memory (256 KiB by default,
// GORO_STACK_SIZE to change it) of which the kernel commits only the pages that are touched, so
// a goroutine that stays shallow costs one 4 KiB page of RSS while a deep one can still grow to
// the whole reservation. C++ frames hold raw pointers into the stack, so unlike Go we can never
// move a stack to grow it: reserving address space is the C++ equivalent of Go's copying.
//
// Layout of one stack, low to high addresses:
//     [ guard page | usable ... top ]
// The guard page is PROT_NONE while the process has mappings to spare: running off the stack
// faults there. Linux allows 65,530 mappings per process and a guarded stack costs two (the
// mprotect splits it), so a million parked goroutines cannot all be guarded. Past a budget of a
// quarter of vm.max_map_count, stacks are carved from arenas (one mapping for 256 stacks) where
// the guard page is a "soft guard": mapped but never legitimately written, so it stays zero and
// uncommitted. The scheduler checks its top words and the saved stack pointer at every switch
// (check_overflow) and reports an overflow loudly; that detects overflows after the fact, where
// the hard guard catches them as they happen.
//
// Reuse. Stacks are kept in a per-worker pool (no lock, LIFO so the top page is warm) and a
// shared pool behind it. A stack whose goroutine was seen deep (its saved stack pointer went
// below the top page at some switch) gives its lower pages back with madvise before reuse, so
// the pools hold one committed page per stack. Past the pools, guarded stacks are unmapped and
// arena stacks go, fully released, to the arena free list.
//
// Rejected: segmented stacks (every call would need a check, and C++ code cannot be
// instrumented), copying stacks (C++ frames hold raw pointers), one mapping per stack without
// arenas (the mapping limit), and transparent huge pages (one touched page would commit 2 MiB:
// every stack mapping is marked MADV_NOHUGEPAGE).
#pragma once

#include "goro/detail/platform.hpp"

#include <cstddef>
#include <fstream>
#include <new>
#include <vector>

namespace goro::detail {

struct Stack {
    char* base = nullptr;    // lowest address: the guard page (hard or soft)
    std::size_t size = 0;    // whole reservation, guard included
    bool guarded = false;    // hard guard page (own mapping) rather than an arena slot

    char* top() const noexcept { return base + size; }
    char* bottom() const noexcept { return base + page_size(); }  // lowest usable byte
    explicit operator bool() const noexcept { return base != nullptr; }
};

// StackAllocator hands out and takes back stacks; one per runtime. Thread-safe.
class StackAllocator {
public:
    StackAllocator() {
        std::size_t pg = page_size();
        std::size_t want = env_size("GORO_STACK_SIZE", 256 * 1024);
        if (want < 16 * 1024) want = 16 * 1024;
        size_ = (want + pg - 1) / pg * pg + pg;  // the guard page comes on top of the request
        std::size_t maps = 65530;
        std::ifstream f("/proc/sys/vm/max_map_count");
        if (f) f >> maps;
        guarded_budget_ = maps / 4;
    }

    std::size_t stack_size() const noexcept { return size_; }

    // allocate() returns a fresh or recycled stack whose pages past the top one are released.
    // Throws std::bad_alloc when the address space is exhausted.
    Stack allocate() {
        {
            std::lock_guard<Lock> g(mu_);
            if (!shared_.empty()) {
                Stack s = shared_.back();
                shared_.pop_back();
                return s;
            }
            if (live_guarded_ < guarded_budget_) {
                ++live_guarded_;
            } else {
                return arena_slot_locked();
            }
        }
        void* p = ::mmap(nullptr, size_, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
        if (p == MAP_FAILED) {
            std::lock_guard<Lock> g(mu_);
            --live_guarded_;
            return arena_slot_locked();
        }
        ::madvise(p, size_, MADV_NOHUGEPAGE);
        ::mprotect(p, page_size(), PROT_NONE);
        return Stack{static_cast<char*>(p), size_, true};
    }

    // trim() gives back every page of s but the top one, after a goroutine used it deeply.
    void trim(const Stack& s) noexcept {
        ::madvise(s.bottom(), s.size - 2 * page_size(), MADV_DONTNEED);
    }

    // release() takes a stack that the per-worker pool had no room for.
    void release(Stack s) noexcept {
        std::lock_guard<Lock> g(mu_);
        if (shared_.size() < shared_cap) {
            shared_.push_back(s);
            return;
        }
        if (s.guarded) {
            ::munmap(s.base, s.size);
            --live_guarded_;
        } else {
            ::madvise(s.base, s.size, MADV_DONTNEED);
            arena_free_.push_back(s.base);
        }
    }

private:
    static constexpr std::size_t shared_cap = 1024;
    static constexpr std::size_t arena_stacks = 256;

    Stack arena_slot_locked() {
        if (!arena_free_.empty()) {
            char* b = arena_free_.back();
            arena_free_.pop_back();
            return Stack{b, size_, false};
        }
        if (arena_next_ == arena_end_) {
            std::size_t bytes = size_ * arena_stacks;
            void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                             MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
            if (p == MAP_FAILED) throw std::bad_alloc();
            ::madvise(p, bytes, MADV_NOHUGEPAGE);
            arena_next_ = static_cast<char*>(p);
            arena_end_ = arena_next_ + bytes;
        }
        char* b = arena_next_;
        arena_next_ += size_;
        return Stack{b, size_, false};
    }

    std::size_t size_;
    std::size_t guarded_budget_;
    Lock mu_;
    std::size_t live_guarded_ = 0;     // guarded by mu_
    std::vector<Stack> shared_;        // guarded by mu_
    std::vector<char*> arena_free_;    // guarded by mu_
    char* arena_next_ = nullptr;       // guarded by mu_
    char* arena_end_ = nullptr;        // guarded by mu_
};

// StackPool is a worker's private cache in front of the allocator. Owner thread only.
class StackPool {
public:
    Stack get(StackAllocator& a) {
        if (n_ > 0) return slots_[--n_];
        return a.allocate();
    }
    // put() recycles s; deep says the goroutine was seen using more than the top page.
    void put(StackAllocator& a, Stack s, bool deep) noexcept {
        if (deep) a.trim(s);
        if (n_ < cap) {
            slots_[n_++] = s;
            return;
        }
        a.release(s);
    }

private:
    static constexpr int cap = 64;
    Stack slots_[cap];
    int n_ = 0;
};

}  // namespace goro::detail
