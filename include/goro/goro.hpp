// goro/goro.hpp: the whole library. Go's concurrency model for C++20.
#pragma once

#include "goro/channel.hpp"
#include "goro/context.hpp"
#include "goro/go.hpp"
#include "goro/select.hpp"
#include "goro/sync.hpp"
#include "goro/time.hpp"
