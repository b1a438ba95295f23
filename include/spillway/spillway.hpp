// spillway/spillway.hpp — includes the whole public API.
#pragma once

#include "spillway/errors.hpp"
#include "spillway/io_env.hpp"
#include "spillway/options.hpp"
#include "spillway/pool.hpp"
#include "spillway/stats.hpp"
#include "spillway/tier.hpp"
#include "spillway/trace.hpp"
