# PNG/JPEG decoding and preprocessing (to be written).
