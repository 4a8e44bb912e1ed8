//! Gene-set libraries that ship with the program (`resources/genesets/`, sources and licences
//! in its `NOTICE.md`), named `builtin:NAME` wherever a GMT file is asked for.

use crate::bundled::{self, PREFIX};

/// One bundled GMT library.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuiltinLibrary {
    /// Its name after [`PREFIX`].
    pub name: &'static str,
    /// What it holds, for menus and messages.
    pub title: &'static str,
    /// The GMT text.
    pub text: &'static str,
}

impl BuiltinLibrary {
    /// `builtin:NAME`, as a path field or a spec holds it.
    pub fn source(&self) -> String {
        format!("{PREFIX}{}", self.name)
    }
}

/// Every bundled library.
pub const BUILTIN: [BuiltinLibrary; 2] = [
    BuiltinLibrary {
        name: "antigen-presentation",
        title: "antigen presentation (the C2S-Scale screen's 5 sets: MSigDB Hallmark \
                interferon α and γ, Reactome class I MHC)",
        text: include_str!("../../../resources/genesets/antigen_presentation_screen.gmt"),
    },
    BuiltinLibrary {
        name: "hallmark",
        title: "MSigDB Hallmark v7.5.1 (50 sets)",
        text: include_str!("../../../resources/genesets/h.all.v7.5.1.symbols.gmt"),
    },
];

/// What `source` names: `None` for a file path, else the built-in library, or the list of
/// names when `builtin:NAME` names none.
pub fn lookup(source: &str) -> Option<Result<&'static BuiltinLibrary, String>> {
    let name = bundled::name(std::path::Path::new(source))?;
    Some(BUILTIN.iter().find(|b| b.name == name).ok_or_else(|| {
        let names: Vec<String> = BUILTIN.iter().map(BuiltinLibrary::source).collect();
        bundled::unknown("gene-set library", name, &names)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::genesets::GeneSetLibrary;

    #[test]
    fn every_builtin_parses_and_holds_its_sets() {
        let screen = GeneSetLibrary::parse(BUILTIN[0].text).unwrap();
        let names: Vec<&str> = screen.sets.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names.len(), 5);
        assert!(names.contains(&"REACTOME_CLASS_I_MHC_MEDIATED_ANTIGEN_PROCESSING_PRESENTATION"));
        assert_eq!(
            screen
                .get("HALLMARK_INTERFERON_ALPHA_RESPONSE")
                .unwrap()
                .genes
                .len(),
            97
        );
        let hallmark = GeneSetLibrary::parse(BUILTIN[1].text).unwrap();
        assert_eq!(hallmark.sets.len(), 50);
    }

    #[test]
    fn names_resolve_and_unknown_ones_list_the_builtins() {
        assert_eq!(lookup("sets.gmt"), None);
        assert_eq!(
            lookup(" builtin:hallmark ").unwrap().unwrap().name,
            "hallmark"
        );
        let e = lookup("builtin:kegg").unwrap().unwrap_err();
        assert!(
            e.contains("`kegg`") && e.contains("builtin:antigen-presentation and builtin:hallmark"),
            "{e}"
        );
    }
}
