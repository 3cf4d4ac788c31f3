# DICOM reading and rendering (to be written).
