//! Command names: the one spelling every variant is looked up by, and the
//! past-tense event type derived for commands the table does not name.

/// The words of a command name, lower-case: split at every character that
/// is not a letter or digit and at case changes, so `ADD_TO_CART`,
/// `AddToCart`, `add.to.cart` and `add-to-cart` all give `add to cart`.
pub(super) fn words(command: &str) -> Vec<String> {
    let mut words = Vec::new();
    for chunk in command.split(|c: char| !c.is_alphanumeric()) {
        let chars: Vec<char> = chunk.chars().collect();
        let mut start = 0;
        for i in 1..chars.len() {
            let (prev, cur) = (chars[i - 1], chars[i]);
            let next_is_lower = chars.get(i + 1).is_some_and(|c| c.is_lowercase());
            // aB → a|B, and in a run of capitals the last one starts the
            // next word: XMLParser → XML|Parser.
            if (prev.is_lowercase() || prev.is_ascii_digit()) && cur.is_uppercase()
                || prev.is_uppercase() && cur.is_uppercase() && next_is_lower
            {
                words.push(chars[start..i].iter().collect::<String>().to_lowercase());
                start = i;
            }
        }
        if start < chars.len() {
            words.push(chars[start..].iter().collect::<String>().to_lowercase());
        }
    }
    words
}

/// The lookup spelling of a command: its words run together, so every
/// spelling of one command normalises to the same string (`addtocart`).
/// (Splitting into words only cuts at separators and case changes, so this
/// is the letters and digits, lower-cased, without building the words.)
pub(crate) fn normalise(command: &str) -> String {
    // Commands are nearly always ASCII, where a byte is a character and
    // lower-casing one needs no Unicode tables.
    if command.is_ascii() {
        return command
            .bytes()
            .filter(u8::is_ascii_alphanumeric)
            .map(|b| char::from(b.to_ascii_lowercase()))
            .collect();
    }
    command
        .chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// The event type derived from a command with no table entry: its first
/// word is taken as the verb and put in the past participle, the other
/// words follow in `PascalCase`: `REGISTER_CUSTOMER` → `RegisteredCustomer`,
/// `ship.order` → `ShippedOrder`. `None` when the command has no words.
pub(crate) fn derive_event_type(command: &str) -> Option<String> {
    let words = words(command);
    let (verb, rest) = words.split_first()?;
    let mut name = participle(verb);
    for word in rest {
        name.push_str(&pascal(word));
    }
    Some(name)
}

/// Verbs whose participle the rules below would get wrong, and compound
/// verbs that legacy systems write as one word.
const IRREGULAR: &[(&str, &str)] = &[
    ("begin", "Begun"),
    ("bind", "Bound"),
    ("break", "Broken"),
    ("bring", "Brought"),
    ("build", "Built"),
    ("buy", "Bought"),
    ("checkin", "CheckedIn"),
    ("checkout", "CheckedOut"),
    ("choose", "Chosen"),
    ("cut", "Cut"),
    ("do", "Done"),
    ("draw", "Drawn"),
    ("drive", "Driven"),
    ("find", "Found"),
    ("forget", "Forgotten"),
    ("freeze", "Frozen"),
    ("get", "Got"),
    ("give", "Given"),
    ("go", "Gone"),
    ("hide", "Hidden"),
    ("hold", "Held"),
    ("keep", "Kept"),
    ("lay", "Laid"),
    ("leave", "Left"),
    ("lend", "Lent"),
    ("login", "LoggedIn"),
    ("logout", "LoggedOut"),
    ("lose", "Lost"),
    ("make", "Made"),
    ("pay", "Paid"),
    ("put", "Put"),
    ("quit", "Quit"),
    ("read", "Read"),
    ("rebuild", "Rebuilt"),
    ("repay", "Repaid"),
    ("resend", "Resent"),
    ("reset", "Reset"),
    ("rewrite", "Rewritten"),
    ("ring", "Rung"),
    ("say", "Said"),
    ("see", "Seen"),
    ("sell", "Sold"),
    ("send", "Sent"),
    ("set", "Set"),
    ("shut", "Shut"),
    ("signin", "SignedIn"),
    ("signout", "SignedOut"),
    ("signup", "SignedUp"),
    ("speak", "Spoken"),
    ("spend", "Spent"),
    ("split", "Split"),
    ("steal", "Stolen"),
    ("take", "Taken"),
    ("tell", "Told"),
    ("throw", "Thrown"),
    ("undo", "Undone"),
    ("upset", "Upset"),
    ("win", "Won"),
    ("withdraw", "Withdrawn"),
    ("write", "Written"),
];

/// The past participle of a lower-case verb, in `PascalCase`: the irregular
/// list first, then the regular rules: `-e` takes `d` (`remove` →
/// `Removed`), consonant + `y` becomes `ied` (`apply` → `Applied`), a short
/// verb ending consonant-vowel-consonant doubles its last letter (`ship` →
/// `Shipped`, but not after `w`, `x` or `y`), everything else takes `ed`.
fn participle(verb: &str) -> String {
    if let Ok(at) = IRREGULAR.binary_search_by(|(v, _)| v.cmp(&verb)) {
        return IRREGULAR[at].1.to_owned();
    }
    let chars: Vec<char> = verb.chars().collect();
    let is_vowel = |c: char| "aeiou".contains(c);
    let past = match chars.as_slice() {
        [.., 'e'] => format!("{verb}d"),
        [.., before, 'y'] if !is_vowel(*before) => format!("{}ied", &verb[..verb.len() - 1]),
        [.., a, b, c]
            if chars.len() <= 4
                && !is_vowel(*a)
                && is_vowel(*b)
                && !is_vowel(*c)
                && !"wxy".contains(*c)
                && chars.iter().filter(|c| is_vowel(**c)).count() == 1 =>
        {
            format!("{verb}{c}ed")
        }
        _ => format!("{verb}ed"),
    };
    pascal(&past)
}

fn pascal(word: &str) -> String {
    let mut chars = word.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_uppercase().chain(chars).collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The ASCII path spells every command as the general one does.
        #[test]
        fn the_ascii_path_normalises_as_the_general_one(command in "[ -~]{0,24}") {
            let general: String = command
                .chars()
                .filter(|c| c.is_alphanumeric())
                .flat_map(char::to_lowercase)
                .collect();
            proptest::prop_assert_eq!(normalise(&command), general);
        }
    }

    #[test]
    fn every_spelling_normalises_alike() {
        for spelling in [
            "ADD_TO_CART",
            "AddToCart",
            "add.to.cart",
            "add-to-cart",
            "addToCart",
            "Add To Cart",
        ] {
            assert_eq!(normalise(spelling), "addtocart", "{spelling}");
        }
        assert_eq!(words("XMLImport2Db"), ["xml", "import2", "db"]);
        for spelling in ["XMLImport2Db", "ship.ORDER-now", "ÄnderungGespeichert"] {
            assert_eq!(normalise(spelling), words(spelling).concat(), "{spelling}");
        }
        assert_eq!(normalise("--"), "");
    }

    #[test]
    fn derived_event_types_follow_the_rules() {
        for (command, event) in [
            ("ADD_TO_CART", "AddedToCart"),
            ("remove.from.cart", "RemovedFromCart"),
            ("ApplyCoupon", "AppliedCoupon"),
            ("ship-order", "ShippedOrder"),
            ("STOP_SUBSCRIPTION", "StoppedSubscription"),
            ("open_account", "OpenedAccount"),
            ("fix_price", "FixedPrice"),
            ("play_track", "PlayedTrack"),
            ("CHECKOUT", "CheckedOut"),
            ("send_invoice", "SentInvoice"),
            ("pay", "Paid"),
            ("register.customer", "RegisteredCustomer"),
            ("update_quantity", "UpdatedQuantity"),
        ] {
            assert_eq!(derive_event_type(command).unwrap(), event, "{command}");
        }
        assert_eq!(derive_event_type("__"), None);
    }

    #[test]
    fn the_irregular_list_is_sorted_for_lookup() {
        assert!(IRREGULAR.windows(2).all(|w| w[0].0 < w[1].0));
    }
}
