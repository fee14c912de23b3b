"""Pure numpy/scipy/gemmi/keras back end of DeepRes (never imports pyworkflow or pwem)."""
