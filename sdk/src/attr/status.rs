//! HTTP status codes, bounded to the IANA registry.
//!
//! `http.response.status_code` could take 65,536 values from a misbehaving peer;
//! here it takes the 61 registered codes, and anything else (0, 499, 520, 9999)
//! becomes `_OTHER`, so a broken endpoint cannot mint series.

use super::{AttrValue, Attribute, AttributeDoc, Dimension, OTHER};

/// Every IANA-registered status code, with its text for `error.type`.
#[rustfmt::skip]
pub const REGISTERED_STATUS_CODES: [(u16, &str); 61] = [
    (100, "100"), (101, "101"), (102, "102"), (103, "103"),
    (200, "200"), (201, "201"), (202, "202"), (203, "203"), (204, "204"),
    (205, "205"), (206, "206"), (207, "207"), (208, "208"), (226, "226"),
    (300, "300"), (301, "301"), (302, "302"), (303, "303"), (304, "304"),
    (305, "305"), (307, "307"), (308, "308"),
    (400, "400"), (401, "401"), (402, "402"), (403, "403"), (404, "404"),
    (405, "405"), (406, "406"), (407, "407"), (408, "408"), (409, "409"),
    (410, "410"), (411, "411"), (412, "412"), (413, "413"), (414, "414"),
    (415, "415"), (416, "416"), (417, "417"), (421, "421"), (422, "422"),
    (423, "423"), (424, "424"), (425, "425"), (426, "426"), (428, "428"),
    (429, "429"), (431, "431"), (451, "451"),
    (500, "500"), (501, "501"), (502, "502"), (503, "503"), (504, "504"),
    (505, "505"), (506, "506"), (507, "507"), (508, "508"), (510, "510"),
    (511, "511"),
];

/// Index of `_OTHER` in the status domain; also its size minus one.
pub const STATUS_OTHER_INDEX: usize = REGISTERED_STATUS_CODES.len();

/// Lookup table from status code (0..600) to domain index.
const STATUS_INDEX: [u8; 600] = {
    let mut table = [STATUS_OTHER_INDEX as u8; 600];
    let mut i = 0;
    while i < REGISTERED_STATUS_CODES.len() {
        table[REGISTERED_STATUS_CODES[i].0 as usize] = i as u8;
        i += 1;
    }
    table
};

/// The domain index of `code`: its place among the registered codes, or the
/// index of `_OTHER` after them.
#[inline]
pub fn status_index(code: u16) -> usize {
    match STATUS_INDEX.get(usize::from(code)) {
        Some(index) => usize::from(*index),
        None => STATUS_OTHER_INDEX,
    }
}

/// An HTTP status code as a series coordinate along a [`StatusTextDimension`]:
/// a registered code is its own value, anything else is `_OTHER`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct HttpStatus(pub u16);

impl From<u16> for HttpStatus {
    fn from(code: u16) -> Self {
        HttpStatus(code)
    }
}

impl crate::instrument::Coordinate for HttpStatus {
    #[inline]
    fn coordinate(self) -> usize {
        status_index(self.0)
    }
    fn fits(dimension: &dyn Dimension) -> bool {
        dimension.cardinality() == STATUS_OTHER_INDEX + 1
    }
}

/// The HTTP status code as *text* under an attribute key of your choice
/// (`status="503"`): the 61 registered codes, then `_OTHER`.
///
/// For attributes whose readers match on the code as a string, such as
/// `status=~"5.."` on a gateway's request counter. The semantic-convention
/// `http.response.status_code` is an integer; the delivery family emits that one.
#[derive(Clone, Copy, Debug)]
pub struct StatusTextDimension {
    key: &'static str,
}

impl StatusTextDimension {
    /// The dimension under attribute `key`.
    pub const fn new(key: &'static str) -> Self {
        StatusTextDimension { key }
    }
}

impl Dimension for StatusTextDimension {
    fn cardinality(&self) -> usize {
        STATUS_OTHER_INDEX + 1
    }
    fn attributes(&self, index: usize, out: &mut Vec<Attribute>) {
        let value = match REGISTERED_STATUS_CODES.get(index) {
            Some((_, text)) => text,
            None if index == STATUS_OTHER_INDEX => OTHER,
            None => return,
        };
        out.push(Attribute {
            key: self.key,
            value: AttrValue::Str(value),
        });
    }
    fn docs(&self) -> Vec<AttributeDoc> {
        vec![AttributeDoc {
            key: self.key,
            values: format!(
                "the HTTP status code as text: the {} IANA-registered codes (`100` … `511`), else `_OTHER`",
                REGISTERED_STATUS_CODES.len()
            ),
        }]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_dimension_names_registered_codes_and_folds_the_rest() {
        let dim = StatusTextDimension::new("status");
        let text = |code: u16| {
            let mut out = Vec::new();
            dim.attributes(
                crate::instrument::Coordinate::coordinate(HttpStatus(code)),
                &mut out,
            );
            assert_eq!(out.len(), 1);
            assert_eq!(out[0].key, "status");
            out[0].value.to_text()
        };
        assert_eq!(text(200), "200");
        assert_eq!(text(429), "429");
        assert_eq!(text(418), OTHER);
        assert_eq!(text(0), OTHER);
        assert_eq!(text(u16::MAX), OTHER);
        assert_eq!(dim.cardinality(), 62);
        let mut out = Vec::new();
        dim.attributes(62, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn registered_codes_map_to_themselves_and_the_rest_to_other() {
        for (i, (code, text)) in REGISTERED_STATUS_CODES.iter().enumerate() {
            assert_eq!(status_index(*code), i);
            assert_eq!(text.parse::<u16>().unwrap(), *code);
        }
        for code in [0u16, 99, 199, 418, 499, 520, 599, 600, 9999, u16::MAX] {
            assert_eq!(status_index(code), STATUS_OTHER_INDEX, "{code}");
        }
    }
}
