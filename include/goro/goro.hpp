// goro/goro.hpp: the whole library. Go's concurrency model for C++20.
#pragma once

#include "goro/go.hpp"
#include "goro/sync.hpp"
#include "goro/time.hpp"
