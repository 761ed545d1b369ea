//! skiff shared API model.
