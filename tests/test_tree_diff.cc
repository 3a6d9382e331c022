#include "layers/tree_diff.h"
