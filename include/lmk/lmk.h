// Umbrella header: the whole public API.
#pragma once
#include "lmk/buffer.h"
#include "lmk/device.h"
#include "lmk/dtype.h"
#include "lmk/elementwise.h"
#include "lmk/error.h"
#include "lmk/graph.h"
#include "lmk/half.h"
#include "lmk/norm.h"
#include "lmk/reduce.h"
#include "lmk/softmax.h"
#include "lmk/registry.h"
#include "lmk/tensor.h"
