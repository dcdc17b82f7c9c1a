//! A definition that passed validation: parse, don't validate again.

use std::ops::Deref;

use super::definition::VmDefinition;
use super::validate::ModelError;

/// A [`VmDefinition`] with its derived values filled ([`VmDefinition::fill_defaults`]) that
/// passed [`VmDefinition::validate`]. Only [`VmDefinition::into_valid`] makes one, so a function
/// taking a `ValidDefinition` never checks it again; reading goes through `Deref`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidDefinition(VmDefinition);

impl VmDefinition {
    /// Fills the derived values and validates the whole definition, once.
    pub fn into_valid(mut self) -> Result<ValidDefinition, ModelError> {
        self.fill_defaults();
        self.validate()?;
        Ok(ValidDefinition(self))
    }
}

impl ValidDefinition {
    /// The definition itself.
    pub fn into_inner(self) -> VmDefinition {
        self.0
    }
}

impl Deref for ValidDefinition {
    type Target = VmDefinition;
    fn deref(&self) -> &VmDefinition {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_a_valid_definition_gets_through() {
        let mut def = crate::model::fixtures::cloud_vm();
        def.nics[0].mac = None;
        let valid = def.clone().into_valid().unwrap();
        assert!(valid.nics[0].mac.is_some(), "derived values are filled");
        def.name = "bad name".into();
        assert_eq!(def.into_valid().unwrap_err().field, "name");
    }
}
