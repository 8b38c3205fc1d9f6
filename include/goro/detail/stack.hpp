// goro/detail/stack.hpp: goroutine stacks (mirrors the role of stack.go).
//
// The model. Every goroutine gets a fixed reservation of virtual memory (256 KiB by default,
// GORO_STACK_SIZE to change it) of which the kernel commits only the pages that are touched, so
// a goroutine that stays shallow costs one 4 KiB page of RSS while a deep one can still grow to
// the whole reservation. C++ frames hold raw pointers into the stack, so unlike Go we can never
// move a stack to grow it: reserving address space is the C++ equivalent of Go's copying.
//
// Layout of one stack, low to high addresses:
//     [ guard, 64 KiB | usable ... top ]
// Stacks are carved from arenas: one mapping holds 64 stacks, so making a stack costs no system
// call but, while hard-guarded, one mprotect. The guard is PROT_NONE while the process has
// mappings to spare: running off the stack faults there, and the runtime's SIGSEGV handler
// reports the overflow. Linux allows 65,530 mappings per process and a guarded stack costs two
// (the mprotect splits the arena's mapping), so a million parked goroutines cannot all be
// guarded. Past a budget of a quarter of vm.max_map_count, stacks keep a "soft guard": mapped
// but never legitimately written, so it stays zero and uncommitted. The scheduler checks its
// top page and the saved stack pointer at every switch (Scheduler::after_switch, exits
// included, so a stack is never reused with a dirty guard). GORO_STACK_HARD_GUARDS sets the
// budget (0: soft guards only).
//
// Guards. Go checks the stack bound in every function's prologue; C++ code has no such check,
// and the stack below a guard is another goroutine's (stacks are adjacent in an arena). A frame
// larger than the guard can skip it and write into the neighbour's live frames. Two defences:
// goro::goro compiles with -fstack-clash-protection, which makes every frame larger than a page
// touch each page it allocates, top down, so the first touch below the stack lands in the guard
// whatever the guard's size; and the guard is 64 KiB wide, not a page, so that code built
// without the flag (other libraries, projects that do not use the CMake target) is still caught
// for any frame that writes within 64 KiB of the stack's end: an I/O buffer, a std::array. Address
// space is free (64 KiB more reservation a stack, and page tables that span it: 128 bytes a
// goroutine at most), and a hard guard of any width is one mprotect and one mapping split.
// What the soft guard cannot catch, and why: reading a guard page costs a page fault (about
// 1 us here, mapping the zero page) the first time for every stack, so only the guard's top
// page is read (the last word of each 512-byte block of its top 4 KiB). It catches small frames
// run into the guard and any contiguous write of 520 bytes or more into that top 4 KiB. It does
// not catch: a frame that skips the top 4 KiB and writes only lower in the guard (harmless to
// others while it stays within the 64 KiB: the goroutine just used more stack than it had);
// stack-clash probes, which write zeros over zeros; writes that land in a neighbour without
// touching the guard (a frame larger than stack and guard together); and it detects only after
// the fact, at the goroutine's next switch, by which time a neighbour may have been written.
//
// Reuse. Stacks are kept in a per-worker pool (no lock, LIFO so the top page is warm) and a
// shared pool behind it. A stack comes back holding the pages its goroutine committed; the
// worker's pool keeps them, up to a budget of 2 MiB of such pages a worker (the depth is the
// lowest stack pointer seen at a switch), and trims a stack past the budget with madvise, so
// that the next goroutine does not fault them back in. Stacks the worker's pool has no room for
// are trimmed before they go to the shared pool. Depth is sampled at switches only, so a
// goroutine that recursed deeply between two keeps its pages while its stack sits in a pool:
// the pools' sizes (64 per worker, 1,024 shared) bound that. Past the pools, stacks give all
// their memory back, in sorted batches, to a free list; address space is never unmapped.
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

// stack_guard is the size of the guard below each stack: 16 pages of 4 KiB, one of 64 KiB (a
// multiple of every page size Linux uses). See "Guards" above for why this size.
inline constexpr std::size_t stack_guard = 64 * 1024;

struct Stack {
    char* base = nullptr;    // lowest address: the guard (hard or soft)
    std::size_t size = 0;    // whole reservation, guard included
    char* low = nullptr;     // lowest saved stack pointer seen since the stack was last trimmed
    bool guarded = false;    // hard guard (PROT_NONE, own mapping) rather than a soft one
#if GORO_TSAN
    void* tsan_fiber = nullptr;  // ThreadSanitizer's fiber for whatever runs on this stack
#endif

    char* top() const noexcept { return base + size; }
    char* bottom() const noexcept { return base + stack_guard; }  // lowest usable byte
    std::size_t usable() const noexcept { return size - stack_guard; }
    explicit operator bool() const noexcept { return base != nullptr; }

    // committed() is what the pages below the top one hold, as far as switches saw: the bytes
    // from the lowest saved stack pointer to the top page.
    std::size_t committed() const noexcept {
        std::size_t d = static_cast<std::size_t>(top() - low);
        return d > page_size() ? d - page_size() : 0;
    }

    // soft_guard_dirty() tells whether something wrote into the top 4 KiB of the soft guard:
    // the last word of each 512-byte block there, zero unless written ("Guards" above). At every
    // switch, so only the guard page these reads keep mapped to the kernel's zero page: 8 loads,
    // one TLB entry, and cached lines (all stacks' guards map the same physical page).
    bool soft_guard_dirty() const noexcept {
        auto* w = reinterpret_cast<const std::uint64_t*>(bottom());
        std::uint64_t any = 0;
        for (std::ptrdiff_t k = 0; k < 8; ++k) any |= w[-1 - 64 * k];
        return any != 0;
    }
};

// StackAllocator hands out and takes back stacks; one per runtime. Thread-safe.
class StackAllocator {
public:
    StackAllocator() {
        std::size_t pg = page_size();
        std::size_t want = env_size("GORO_STACK_SIZE", 256 * 1024);
        if (want < 16 * 1024) want = 16 * 1024;
        size_ = (want + pg - 1) / pg * pg + stack_guard;  // the guard comes on top of the request
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
                return s;  // trimmed before it came here
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
        if (guard && ::mprotect(base, stack_guard, PROT_NONE) != 0) {
            std::lock_guard<Lock> g(mu_);
            --live_guarded_;
            guard = false;  // out of mappings after all: the soft guard still works
        }
        Stack s;
        s.base = base;
        s.size = size_;
        s.low = s.top();
        s.guarded = guard;
        return s;
    }

    // trim() gives back every page of s but the top one (the guard is not touched: a soft
    // guard's top page stays mapped to the zero page for the checks at every switch).
    static void trim(Stack& s) noexcept {
        ::madvise(s.bottom(), s.usable() - page_size(), MADV_DONTNEED);
        s.low = s.top();
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
        for (Stack& p : pending_) p.low = p.top();
        free_.insert(free_.end(), pending_.begin(), pending_.end());
        pending_.clear();
    }

    // in_guard() tells whether addr lies in the hard guard page of some stack (for the SIGSEGV
    // handler, which cannot take locks: it only checks the faulting goroutine's own stack).
    static bool in_guard(const Stack& s, const void* addr) noexcept {
        auto* a = static_cast<const char*>(addr);
        return s.guarded && a >= s.base && a < s.bottom();
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
//
// A stack comes back with whatever its goroutine committed below the top page. Trimming it at
// every exit costs a madvise, and its next user faults the pages back in (a goroutine that
// parks with 8 KiB of frames cost 6x a shallow one that way): instead the pool keeps such
// pages, up to idle_budget bytes in all, and trims only a stack that would go past it. Like
// Go's per-P stackcache (stack.go), whose bound is _StackCacheSize a size class, the budget is
// per worker; stacks the pool has no room for leave it trimmed.
class StackPool {
public:
    // idle_budget bounds the committed bytes below the top pages of a pool's stacks, as
    // sampled (Stack::committed): 32 goroutines that park with 32 KiB of frames each fit.
    static constexpr std::size_t idle_budget = 2 << 20;

    Stack get(StackAllocator& a) {
        if (n_ == 0) return a.allocate();
        Stack s = slots_[--n_];
        idle_ -= s.committed();
        return s;
    }

    // put() recycles s, trimming it if its pages do not fit in the budget or the pool.
    void put(StackAllocator& a, Stack s) noexcept {
        std::size_t c = s.committed();
        if (c > 0 && (n_ == cap || idle_ + c > idle_budget)) {
            StackAllocator::trim(s);
            c = 0;
        }
        if (n_ == cap) {
            a.release(s);
            return;
        }
        idle_ += c;
        slots_[n_++] = s;
    }

private:
    static constexpr int cap = 64;
    Stack slots_[cap];
    int n_ = 0;
    std::size_t idle_ = 0;  // sum of committed() over slots_[0, n_)
};

}  // namespace goro::detail
