//! placeholder
use crate::error::FsError;
use bootproof_image::ReadAt;
use std::sync::Arc;
pub(crate) struct Iso9660; impl Iso9660 { pub(crate) fn open(_d: Arc<dyn ReadAt>) -> Result<Box<dyn crate::FileSystem>, FsError> { todo!() } }
