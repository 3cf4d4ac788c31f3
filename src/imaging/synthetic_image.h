// A picture made in code, for measurements and checks that need an image but no file: bench --image
// synthetic and the behavioural fingerprint of weights.lock (repro/fingerprint.h). Every lock's fingerprint
// was computed from these exact pixels, so changing them invalidates all of them.
#pragma once

#include "imaging/image.h"

namespace medlab {

// 896 x 896 grey: a diagonal gradient crossed by concentric rings, standing in for an X-ray.
Image synthetic_image();

}  // namespace medlab
