//! GS1 identifiers a network file may give, for traceability exports (EPCIS): a site's
//! Global Location Number and a sku's Global Trade Item Number. Both end in a mod-10 check
//! digit, checked here so a typo is a problem of the file, not a wrong identifier in a
//! regulator's hands.

/// The GS1 mod-10 check digit of `digits` (the identifier without its check digit).
fn check_digit(digits: &[u8]) -> u8 {
    // From the right, weights 3, 1, 3, …
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| u32::from(*d) * if i % 2 == 0 { 3 } else { 1 })
        .sum();
    ((10 - sum % 10) % 10) as u8
}

/// Why `text` is not a GS1 identifier of one of `lengths` digits with a valid check digit.
fn problem(text: &str, what: &str, lengths: &[usize]) -> Option<String> {
    let digits: Vec<u8> = text.bytes().map(|b| b.wrapping_sub(b'0')).collect();
    if !lengths.contains(&text.len()) || digits.iter().any(|d| *d > 9) {
        let lengths: Vec<String> = lengths.iter().map(ToString::to_string).collect();
        return Some(format!(
            "{what} must be {} digits, got {text:?}",
            lengths.join(", ")
        ));
    }
    let (body, last) = digits.split_at(digits.len() - 1);
    let expected = check_digit(body);
    (last[0] != expected).then(|| {
        format!(
            "{what} {text:?} has check digit {}, expected {expected}",
            last[0]
        )
    })
}

/// Why `text` is not a GLN (13 digits, valid check digit), if it is not.
pub fn gln_problem(text: &str) -> Option<String> {
    problem(text, "gln", &[13])
}

/// Why `text` is not a GTIN-8, -12, -13 or -14, if it is not.
pub fn gtin_problem(text: &str) -> Option<String> {
    problem(text, "gtin", &[8, 12, 13, 14])
}

/// A valid GTIN as the 14 digits GS1 Digital Link and EPCIS use (zeros on the left).
pub fn gtin14(gtin: &str) -> String {
    format!("{gtin:0>14}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_digits_of_known_identifiers() {
        // GS1's own examples: GTIN 09506000134352 and GLN 9506000134352 share a body.
        assert_eq!(gtin_problem("09506000134352"), None);
        assert_eq!(gln_problem("9506000134352"), None);
        assert_eq!(gtin_problem("4006381333931"), None);
        assert_eq!(gtin_problem("96385074"), None);
        assert_eq!(gtin_problem("036000291452"), None);
    }

    #[test]
    fn a_wrong_check_digit_or_form_is_named() {
        assert!(
            gtin_problem("09506000134353")
                .unwrap()
                .contains("expected 2")
        );
        assert!(gln_problem("950600013435").unwrap().contains("13 digits"));
        assert!(gtin_problem("0950600013435x").is_some());
        assert!(gtin_problem("123456789").is_some());
    }

    #[test]
    fn gtins_are_padded_to_fourteen_digits() {
        assert_eq!(gtin14("96385074"), "00000096385074");
        assert_eq!(gtin14("09506000134352"), "09506000134352");
    }
}
