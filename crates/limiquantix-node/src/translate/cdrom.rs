//! CD-ROMs of a CreateVM request. The id [`SEED_CDROM_ID`] is kept for the cloud-init seed
//! drive the daemon adds itself.

use super::fields::device_id;
use crate::confine::Confinement;
use crate::error::ApiError;
use limiquantix_proto::v1 as pb;
use limiquantix_vm::model::{self as m, CdromRole, CdromSpec};

/// Device id of the seed CD-ROM the daemon adds.
pub const SEED_CDROM_ID: &str = "seed";

/// Checks CD-ROM `i` of the request and builds its model (a media drive, empty when no
/// `iso_path` is given).
pub(super) fn cdrom(
    i: usize,
    c: &pb::CdromSpec,
    confinement: &Confinement,
) -> Result<CdromSpec, ApiError> {
    let f = format!("spec.cdroms[{i}]");
    let id = device_id(&c.id, "cdrom", i);
    if id == SEED_CDROM_ID {
        return Err(ApiError::invalid(
            format!("{f}.id"),
            format!("{SEED_CDROM_ID:?} is reserved for the cloud-init seed drive"),
        ));
    }
    m::check_device_id(&id).map_err(|p| ApiError::invalid(format!("{f}.id"), p))?;
    let path = if c.iso_path.is_empty() {
        None
    } else {
        Some(confinement.check(&format!("{f}.iso_path"), &c.iso_path)?)
    };
    Ok(CdromSpec {
        id,
        path,
        bootable: c.bootable,
        role: CdromRole::Media,
        boot_index: None,
    })
}
