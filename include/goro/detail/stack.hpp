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
// Stacks are carved from arenas: one mapping holds 64 stacks, so making a stack costs no system
// call but, while guarded, one mprotect. The guard page is PROT_NONE while the process has
// mappings to spare: running off the stack faults there, and the runtime's SIGSEGV handler
// reports the overflow. Linux allows 65,530 mappings per process and a guarded stack costs two
// (the mprotect splits the arena's mapping), so a million parked goroutines cannot all be
// guarded. Past a budget of a quarter of vm.max_map_count, stacks keep a "soft guard": mapped
// but never legitimately written, so it stays zero and uncommitted. The scheduler checks its
// top word and the saved stack pointer at every switch (Scheduler::after_switch, exits
// included, so a stack is never reused with a dirty guard), which detects an overflow after
// the fact where the hard guard catches it as it happens. GORO_STACK_HARD_GUARDS sets the
// budget (0: soft guards only).
//
// Reuse. Stacks are kept in a per-worker pool (no lock, LIFO so the top page is warm) and a
// shared pool behind it. A stack whose goroutine was seen deep (its saved stack pointer went
// below the top page at some switch) gives its lower pages back with madvise before reuse.
// Depth is sampled at switches only, so a goroutine that recursed deeply between two keeps its
// pages while its stack sits in a pool: the pools' sizes (64 per worker, 1,024 shared) bound
// that. Past the pools, stacks give all their memory back, in sorted batches. Past the pools, a stack is released whole
// (madvise) to the free list of its kind; address space is never unmapped.
//
// Rejected: segmented stacks (every call would need a check, and C++ code cannot be
// instrumented), copying stacks (C++ frames hold raw pointers), one mapping per stack (three
// system calls per stack, and the mapping limit), and transparent huge pages (one touched page
// would commit 2 MiB: with THP set to "always", arenas are marked MADV_NOHUGEPAGE).
#pragma once

#include "goro/detail/platform.hpp"

#include <algorithm>
#include <cstddef>
#include <fstream>
#include <new>
#include <string>
#include <vector>

namespace goro::detail {

struct Stack {
    char* base = nullptr;    // lowest address: the guard page (hard or soft)
    std::size_t size = 0;    // whole reservation, guard included
    bool guarded = false;    // hard guard page (own mapping) rather than an arena slot
#if GORO_TSAN
    void* tsan_fiber = nullptr;  // ThreadSanitizer's fiber for whatever runs on this stack
#endif

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
        // GORO_STACK_HARD_GUARDS overrides the budget (0: soft guards only, for tests).
        guarded_budget_ = env_size("GORO_STACK_HARD_GUARDS", maps / 4);
        std::ifstream thp("/sys/kernel/mm/transparent_hugepage/enabled");
        std::string mode;
        if (thp) std::getline(thp, mode);
        no_huge_ = mode.find("[always]") != std::string::npos;
    }

    std::size_t stack_size() const noexcept { return size_; }

    // allocate() returns a fresh or recycled stack whose pages past the top one are released.
    // Throws std::bad_alloc when the address space is exhausted.
    Stack allocate() {
        char* base;
        bool guard;
        {
            std::lock_guard<Lock> g(mu_);
            if (!shared_.empty()) {
                Stack s = shared_.back();
                shared_.pop_back();
                return s;
            }
            for (std::vector<Stack>* v : {&pending_, &free_}) {
                if (!v->empty()) {
                    Stack s = v->back();
                    v->pop_back();
                    return s;
                }
            }
            base = carve_locked();
            // Guard pages split mappings, and split mappings are never merged back: count them.
            guard = live_guarded_ < guarded_budget_;
            if (guard) ++live_guarded_;
        }
        if (guard && ::mprotect(base, page_size(), PROT_NONE) != 0) {
            std::lock_guard<Lock> g(mu_);
            --live_guarded_;
            guard = false;  // out of mappings after all: the soft guard still works
        }
        return Stack{base, size_, guard};
    }

    // trim() gives back every page of s but the top one, after a goroutine used it deeply.
    void trim(const Stack& s) noexcept {
        ::madvise(s.bottom(), s.size - 2 * page_size(), MADV_DONTNEED);
    }

    // release() takes a stack that the per-worker pool had no room for. Past the shared pool,
    // stacks give all their memory back, in batches: a burst of exits (100,000 goroutines that
    // were parked at once) must not cost a system call each. Stacks carved one after another
    // from an arena are adjacent, so a sorted batch merges into a few madvise calls.
    void release(Stack s) noexcept {
        std::lock_guard<Lock> g(mu_);
        if (shared_.size() < shared_cap) {
            shared_.push_back(s);
            return;
        }
        pending_.push_back(s);
        if (pending_.size() < release_batch) return;
        std::sort(pending_.begin(), pending_.end(),
                  [](const Stack& a, const Stack& b) { return a.base < b.base; });
        for (std::size_t i = 0; i < pending_.size();) {
            std::size_t j = i + 1;
            while (j < pending_.size() && pending_[j].base == pending_[j - 1].top()) ++j;
            // One run of adjacent stacks; hard guard pages in it stay PROT_NONE.
            ::madvise(pending_[i].base, pending_[j - 1].top() - pending_[i].base, MADV_DONTNEED);
            i = j;
        }
        free_.insert(free_.end(), pending_.begin(), pending_.end());
        pending_.clear();
    }

    // in_guard() tells whether addr lies in the hard guard page of some stack (for the SIGSEGV
    // handler, which cannot take locks: it only checks the faulting goroutine's own stack).
    static bool in_guard(const Stack& s, const void* addr) noexcept {
        auto* a = static_cast<const char*>(addr);
        return s.guarded && a >= s.base && a < s.base + page_size();
    }

private:
    static constexpr std::size_t shared_cap = 1024;
    static constexpr std::size_t release_batch = 256;
    static constexpr std::size_t arena_stacks = 64;

    char* carve_locked() {
        if (arena_next_ == arena_end_) {
            std::size_t bytes = size_ * arena_stacks;
            void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                             MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
            if (p == MAP_FAILED) throw std::bad_alloc();
            if (no_huge_) ::madvise(p, bytes, MADV_NOHUGEPAGE);

            arena_next_ = static_cast<char*>(p);
            arena_end_ = arena_next_ + bytes;
        }
        char* b = arena_next_;
        arena_next_ += size_;
        return b;
    }

    std::size_t size_;
    std::size_t guarded_budget_;
    bool no_huge_ = false;
    Lock mu_;
    std::size_t live_guarded_ = 0;     // stacks ever given a hard guard; guarded by mu_
    std::vector<Stack> shared_;        // guarded by mu_
    std::vector<Stack> pending_;       // released stacks awaiting a batched madvise; mu_
    std::vector<Stack> free_;          // released stacks, memory given back; guarded by mu_
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
