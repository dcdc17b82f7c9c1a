//! Naming a VM: by name, by id, or by a prefix of its id that only one VM has.

use limiquantix_proto::v1::VmStatusResponse;

/// Finds the VM that `query` names: an exact id, then an exact name, then a unique id prefix.
pub fn resolve<'a>(
    vms: &'a [VmStatusResponse],
    query: &str,
) -> Result<&'a VmStatusResponse, String> {
    let query = query.trim();
    if query.is_empty() {
        return Err("a VM name or id is required".to_owned());
    }
    if let Some(vm) = vms.iter().find(|v| v.vm_id == query) {
        return Ok(vm);
    }
    let by_name: Vec<_> = vms.iter().filter(|v| v.name == query).collect();
    match by_name.as_slice() {
        [one] => return Ok(one),
        [] => {}
        many => {
            return Err(format!(
                "{} VMs are named {query:?} ({}); name one by its id",
                many.len(),
                ids(many)
            ));
        }
    }
    let lower = query.to_ascii_lowercase();
    let by_prefix: Vec<_> = vms.iter().filter(|v| v.vm_id.starts_with(&lower)).collect();
    match by_prefix.as_slice() {
        [one] => Ok(one),
        [] => Err(format!(
            "no VM is named {query:?} or has an id starting with it (lqctl vm list shows them)"
        )),
        many => Err(format!(
            "{query:?} is the start of {} VM ids ({}); give more of the id",
            many.len(),
            ids(many)
        )),
    }
}

fn ids(vms: &[&VmStatusResponse]) -> String {
    vms.iter()
        .map(|v| format!("{} {}", v.name, v.vm_id))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vm(id: &str, name: &str) -> VmStatusResponse {
        VmStatusResponse {
            vm_id: id.into(),
            name: name.into(),
            ..Default::default()
        }
    }

    #[test]
    fn names_ids_and_prefixes() {
        let vms = [
            vm("3f2a0000-0000-4000-8000-000000000001", "web1"),
            vm("3f2b0000-0000-4000-8000-000000000002", "web2"),
            vm("9c000000-0000-4000-8000-000000000003", "3f2a"),
        ];
        assert_eq!(resolve(&vms, "web1").unwrap().name, "web1");
        assert_eq!(
            resolve(&vms, "3f2b0000-0000-4000-8000-000000000002")
                .unwrap()
                .name,
            "web2"
        );
        // A name wins over an id prefix.
        assert_eq!(resolve(&vms, "3f2a").unwrap().name, "3f2a");
        assert_eq!(resolve(&vms, "3F2B").unwrap().name, "web2");
        assert_eq!(resolve(&vms, "9c").unwrap().name, "3f2a");
        let err = resolve(&vms, "3f2").unwrap_err();
        assert!(err.contains("give more of the id"), "{err}");
        let err = resolve(&vms, "db").unwrap_err();
        assert!(err.contains("lqctl vm list"), "{err}");
        assert!(resolve(&vms, " ").is_err());
    }

    #[test]
    fn duplicate_names_need_an_id() {
        let vms = [vm("a1", "x"), vm("b2", "x")];
        assert!(resolve(&vms, "x").unwrap_err().contains("by its id"));
        assert_eq!(resolve(&vms, "b").unwrap().vm_id, "b2");
    }
}
