//! The one conversion between the network's temperature classes and the contracts'
//! `coldchain.common.v1.TemperatureClass`.

use coldchain_network::TemperatureClass;
use coldchain_proto::common::v1 as common;

/// The proto enum of a class.
pub fn to_proto(class: TemperatureClass) -> common::TemperatureClass {
    match class {
        TemperatureClass::Frozen => common::TemperatureClass::Frozen,
        TemperatureClass::Chilled => common::TemperatureClass::Chilled,
        TemperatureClass::Pharma => common::TemperatureClass::Pharma,
        TemperatureClass::Cool => common::TemperatureClass::Cool,
        TemperatureClass::Ambient => common::TemperatureClass::Ambient,
    }
}

/// The class of a proto enum; `None` for UNSPECIFIED.
pub fn from_proto(class: common::TemperatureClass) -> Option<TemperatureClass> {
    Some(match class {
        common::TemperatureClass::Unspecified => return None,
        common::TemperatureClass::Frozen => TemperatureClass::Frozen,
        common::TemperatureClass::Chilled => TemperatureClass::Chilled,
        common::TemperatureClass::Pharma => TemperatureClass::Pharma,
        common::TemperatureClass::Cool => TemperatureClass::Cool,
        common::TemperatureClass::Ambient => TemperatureClass::Ambient,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_class_round_trips_and_unspecified_is_none() {
        for class in TemperatureClass::ALL {
            assert_eq!(from_proto(to_proto(class)), Some(class));
            assert_eq!(
                to_proto(class).as_str_name(),
                format!("TEMPERATURE_CLASS_{}", class.as_str())
            );
        }
        assert_eq!(from_proto(common::TemperatureClass::Unspecified), None);
    }
}
