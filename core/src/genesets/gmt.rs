//! Gene-set libraries in GMT format (MSigDB, Reactome, Enrichr exports): parsing, searching by
//! name, and matching a set's genes to a dataset's genes.
//!
//! A GMT line is `NAME<TAB>DESCRIPTION<TAB>GENE<TAB>GENE...`. Lines are read as gseapy 1.3.1
//! reads them: surrounding whitespace (including `\r` and trailing tabs) is stripped, and a gene
//! field `SYMBOL,WEIGHT` keeps only `SYMBOL`. Unlike gseapy, which silently keeps the last of
//! two sets with one name and carries empty sets along, both are reported as errors naming the
//! line, since either usually means the wrong file.

use crate::error::{Error, Result};
use std::collections::HashMap;
use std::path::Path;

/// One gene set: its name, its description (often a URL) and its genes as listed (first
/// occurrence of each, in file order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneSet {
    /// Set name, e.g. `HALLMARK_INTERFERON_ALPHA_RESPONSE`.
    pub name: String,
    /// The GMT description field.
    pub description: String,
    /// Gene symbols, without duplicates, in file order.
    pub genes: Vec<String>,
}

/// The sets of one GMT file, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GeneSetLibrary {
    /// The sets, in file order; names are unique.
    pub sets: Vec<GeneSet>,
}

impl GeneSetLibrary {
    /// Reads a GMT file, or a bundled library named `builtin:NAME` ([`super::builtin`]).
    pub fn read(path: &Path) -> Result<Self> {
        if let Some(found) = path.to_str().and_then(super::builtin::lookup) {
            let builtin = found.map_err(Error::InvalidArgument)?;
            return Self::parse(builtin.text).map_err(|detail| Error::Malformed {
                path: path.to_path_buf(),
                detail,
            });
        }
        let bytes = std::fs::read(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let text = String::from_utf8(bytes).map_err(|e| Error::Malformed {
            path: path.to_path_buf(),
            detail: format!(
                "not a text GMT file (invalid UTF-8 at byte {}); save it as UTF-8 text",
                e.utf8_error().valid_up_to()
            ),
        })?;
        Self::parse(&text).map_err(|detail| Error::Malformed {
            path: path.to_path_buf(),
            detail,
        })
    }

    /// Parses GMT text. Errors name the offending line (1-based).
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let mut sets: Vec<GeneSet> = Vec::new();
        let mut first_line: HashMap<String, usize> = HashMap::new();
        for (i, raw) in text.lines().enumerate() {
            let line_no = i + 1;
            let line = raw.trim();
            if line.is_empty() {
                continue;
            }
            let mut fields = line.split('\t');
            let name = fields.next().unwrap_or_default().trim().to_string();
            if name.is_empty() {
                return Err(format!(
                    "line {line_no} has no set name before its first tab; a GMT line is NAME<TAB>DESCRIPTION<TAB>GENE..."
                ));
            }
            let description = fields.next().unwrap_or_default().trim().to_string();
            let mut genes: Vec<String> = Vec::new();
            for field in fields {
                let gene = field.split(',').next().unwrap_or_default().trim();
                if !gene.is_empty() && !genes.iter().any(|g| g == gene) {
                    genes.push(gene.to_string());
                }
            }
            if genes.is_empty() {
                return Err(format!(
                    "line {line_no}: set '{name}' lists no genes; a GMT line is NAME<TAB>DESCRIPTION<TAB>GENE... with tabs between fields"
                ));
            }
            if let Some(prev) = first_line.insert(name.clone(), line_no) {
                return Err(format!(
                    "line {line_no}: set name '{name}' was already used on line {prev}; set names must be unique"
                ));
            }
            sets.push(GeneSet {
                name,
                description,
                genes,
            });
        }
        if sets.is_empty() {
            return Err(
                "no gene sets found; a GMT line is NAME<TAB>DESCRIPTION<TAB>GENE...".into(),
            );
        }
        Ok(Self { sets })
    }

    /// The set called `name` (exact match).
    pub fn get(&self, name: &str) -> Option<&GeneSet> {
        self.sets.iter().find(|s| s.name == name)
    }

    /// The sets whose name contains `query`, ignoring case, in file order (all for an empty query).
    pub fn search(&self, query: &str) -> Vec<&GeneSet> {
        let q = query.trim().to_lowercase();
        self.sets
            .iter()
            .filter(|s| s.name.to_lowercase().contains(&q))
            .collect()
    }

    /// The sets called `names`, in that order. An unknown name is an error listing up to three
    /// sets whose name contains it.
    pub fn select(&self, names: &[String]) -> Result<Vec<&GeneSet>> {
        names
            .iter()
            .map(|n| {
                self.get(n).ok_or_else(|| {
                    let close: Vec<&str> = self
                        .search(n)
                        .into_iter()
                        .take(3)
                        .map(|s| s.name.as_str())
                        .collect();
                    let hint = if close.is_empty() {
                        format!(
                            "the file has {} sets; names are case-sensitive",
                            self.sets.len()
                        )
                    } else {
                        format!("did you mean {}?", close.join(", "))
                    };
                    Error::InvalidArgument(format!(
                        "no gene set named '{n}' in the GMT file ({hint})"
                    ))
                })
            })
            .collect()
    }
}

/// A dataset's gene names, indexed for matching sets against them.
#[derive(Debug, Clone)]
pub struct GeneIndex {
    index: HashMap<String, usize>,
    n_genes: usize,
    uppercase: bool,
}

impl GeneIndex {
    /// Indexes `genes` (a dataset's `var` names, in matrix column order). Names must be unique:
    /// a repeated name is an error naming it, since scores would depend on which copy is used.
    pub fn new(genes: &[String]) -> Result<Self> {
        let mut index = HashMap::with_capacity(genes.len());
        for (i, g) in genes.iter().enumerate() {
            if let Some(prev) = index.insert(g.clone(), i) {
                return Err(Error::InvalidData(format!(
                    "gene name '{g}' appears twice (columns {prev} and {i}); make gene names unique (e.g. anndata's var_names_make_unique) or choose another --gene-column"
                )));
            }
        }
        Ok(Self {
            index,
            n_genes: genes.len(),
            uppercase: false,
        })
    }

    /// Matches set genes after upper-casing the dataset's names, as gseapy does when the data's
    /// names are mostly not upper case but the library's are (see [`gseapy_uppercases`]).
    pub fn uppercased(genes: &[String]) -> Result<Self> {
        let upper: Vec<String> = genes.iter().map(|g| g.to_uppercase()).collect();
        let mut index = Self::new(&upper)?;
        index.uppercase = true;
        Ok(index)
    }

    /// Number of genes in the dataset.
    pub fn n_genes(&self) -> usize {
        self.n_genes
    }

    /// Whether dataset names were upper-cased for matching.
    pub fn is_uppercased(&self) -> bool {
        self.uppercase
    }

    /// The column of `gene`, if the dataset has it.
    pub fn column(&self, gene: &str) -> Option<usize> {
        self.index.get(gene).copied()
    }

    /// Matches `set` to the dataset. A set sharing no gene with the data is an error saying so.
    pub fn match_set(&self, set: &GeneSet) -> Result<SetMatch> {
        let matched = self.overlap(set);
        if matched.columns.is_empty() {
            let example: Vec<&str> = set.genes.iter().take(3).map(String::as_str).collect();
            return Err(Error::InvalidData(format!(
                "gene set '{}' shares no gene with the data (its {} genes, e.g. {}, are all absent); check that the GMT uses the same gene identifiers (symbols vs Ensembl ids, species) as the dataset",
                set.name,
                set.genes.len(),
                example.join(", ")
            )));
        }
        Ok(matched)
    }

    /// Matches every set of a library, keeping sets that share no gene (with no columns), as
    /// a whole-library run does; only a library sharing no gene at all is an error.
    pub fn match_library(&self, sets: &[&GeneSet]) -> Result<Vec<SetMatch>> {
        let matched: Vec<SetMatch> = sets.iter().map(|s| self.overlap(s)).collect();
        if matched.iter().all(|m| m.columns.is_empty()) {
            let example: Vec<&str> = sets
                .iter()
                .flat_map(|s| s.genes.iter())
                .take(3)
                .map(String::as_str)
                .collect();
            return Err(Error::InvalidData(format!(
                "the GMT file shares no gene with the data (none of its {} sets' genes, e.g. {}, is present); check that it uses the same gene identifiers (symbols vs Ensembl ids, species) as the dataset",
                sets.len(),
                example.join(", ")
            )));
        }
        Ok(matched)
    }

    /// The set's genes that the data has.
    fn overlap(&self, set: &GeneSet) -> SetMatch {
        SetMatch {
            name: set.name.clone(),
            n_listed: set.genes.len(),
            columns: set.genes.iter().filter_map(|g| self.column(g)).collect(),
        }
    }
}

/// A gene set matched to a dataset's columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetMatch {
    /// The set's name.
    pub name: String,
    /// Distinct genes the set lists.
    pub n_listed: usize,
    /// Dataset columns of the set's genes that the data has, in set order.
    pub columns: Vec<usize>,
}

impl SetMatch {
    /// How many of the set's genes the data has.
    pub fn n_present(&self) -> usize {
        self.columns.len()
    }
}

/// Python's `str.isupper()`: at least one cased character and no lower-case one.
fn py_isupper(s: &str) -> bool {
    let mut cased = false;
    for c in s.chars() {
        if c.is_lowercase() {
            return false;
        }
        cased |= c.is_uppercase();
    }
    cased
}

/// gseapy's `check_uppercase`: false if every name is an integer (Entrez ids), else whether at
/// least 90 % of names are upper case.
fn mostly_uppercase(names: &[String]) -> bool {
    if names.is_empty() || names.iter().all(|g| g.trim().parse::<i64>().is_ok()) {
        return false;
    }
    let upper = names.iter().filter(|g| py_isupper(g)).count();
    upper as f64 / names.len() as f64 >= 0.9
}

/// Whether gseapy 1.3.1 upper-cases the data's gene names before matching: when fewer than
/// 90 % of them are upper case and each of the library's first 20 sets is mostly upper case.
pub fn gseapy_uppercases(data_genes: &[String], library: &GeneSetLibrary) -> bool {
    !mostly_uppercase(data_genes)
        && library
            .sets
            .iter()
            .take(20)
            .all(|s| mostly_uppercase(&s.genes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_crlf_blank_lines_trailing_tabs_and_weights() {
        let text = "A\tdesc a\tG1\tG2\tG1\t\t\r\n\r\n  \nB\thttp://x\tG3,1.0\tG4\t\n";
        let lib = GeneSetLibrary::parse(text).unwrap();
        assert_eq!(lib.sets.len(), 2);
        assert_eq!(lib.sets[0].name, "A");
        assert_eq!(lib.sets[0].description, "desc a");
        assert_eq!(lib.sets[0].genes, names(&["G1", "G2"]));
        assert_eq!(lib.sets[1].genes, names(&["G3", "G4"]));
    }

    #[test]
    fn duplicate_names_and_empty_sets_are_errors_naming_the_line() {
        let dup = GeneSetLibrary::parse("A\t\tG1\n\nA\t\tG2\n").unwrap_err();
        assert!(
            dup.contains("line 3") && dup.contains("line 1") && dup.contains("'A'"),
            "{dup}"
        );
        let empty = GeneSetLibrary::parse("A\t\tG1\nB\tdesc\t\t\n").unwrap_err();
        assert!(empty.contains("line 2") && empty.contains("'B'"), "{empty}");
        let none = GeneSetLibrary::parse("\n\r\n").unwrap_err();
        assert!(none.contains("no gene sets"), "{none}");
    }

    #[test]
    fn search_is_case_insensitive_and_select_suggests() {
        let lib = GeneSetLibrary::parse(
            "HALLMARK_INTERFERON_ALPHA_RESPONSE\t\tA\nHALLMARK_HYPOXIA\t\tB\nREACTOME_INTERFERON_SIGNALING\t\tC\n",
        )
        .unwrap();
        let hits: Vec<&str> = lib
            .search("interferon")
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(
            hits,
            [
                "HALLMARK_INTERFERON_ALPHA_RESPONSE",
                "REACTOME_INTERFERON_SIGNALING"
            ]
        );
        assert_eq!(lib.search("").len(), 3);
        let err = lib.select(&names(&["HYPOXIA"])).unwrap_err().to_string();
        assert!(
            err.contains("'HYPOXIA'") && err.contains("HALLMARK_HYPOXIA"),
            "{err}"
        );
        let ok = lib.select(&names(&["HALLMARK_HYPOXIA"])).unwrap();
        assert_eq!(ok[0].genes, names(&["B"]));
    }

    #[test]
    fn matching_reports_present_genes_and_refuses_disjoint_sets() {
        let index = GeneIndex::new(&names(&["CD3E", "MS4A1", "LYZ"])).unwrap();
        let set = GeneSet {
            name: "S".into(),
            description: String::new(),
            genes: names(&["LYZ", "NOPE", "CD3E"]),
        };
        let m = index.match_set(&set).unwrap();
        assert_eq!(
            (m.n_listed, m.n_present(), m.columns.clone()),
            (3, 2, vec![2, 0])
        );
        let set_copy = set.clone();
        let disjoint = GeneSet {
            genes: names(&["Cd3e", "X"]),
            ..set
        };
        let err = index.match_set(&disjoint).unwrap_err().to_string();
        assert!(err.contains("shares no gene"), "{err}");
        let all = index.match_library(&[&disjoint]).unwrap_err().to_string();
        assert!(all.contains("shares no gene"), "{all}");
        let some = index.match_library(&[&disjoint, &set_copy]).unwrap();
        assert_eq!((some[0].n_present(), some[1].n_present()), (0, 2));
        let dup = GeneIndex::new(&names(&["A", "B", "A"]))
            .unwrap_err()
            .to_string();
        assert!(
            dup.contains("'A'") && dup.contains("columns 0 and 2"),
            "{dup}"
        );
    }

    #[test]
    fn gseapy_case_rule() {
        let lib = GeneSetLibrary::parse("S\t\tCD3E\tLYZ\n").unwrap();
        assert!(gseapy_uppercases(&names(&["Cd3e", "Lyz"]), &lib));
        assert!(!gseapy_uppercases(&names(&["CD3E", "LYZ"]), &lib));
        let entrez = GeneSetLibrary::parse("S\t\t920\t3458\n").unwrap();
        assert!(!gseapy_uppercases(&names(&["920", "3458"]), &entrez));
        let mouse = GeneSetLibrary::parse("S\t\tCd3e\tLyz\n").unwrap();
        assert!(!gseapy_uppercases(&names(&["Cd3e"]), &mouse));
        let index = GeneIndex::uppercased(&names(&["Cd3e", "Lyz"])).unwrap();
        assert_eq!(index.column("LYZ"), Some(1));
        assert!(py_isupper("RP11-12A") && !py_isupper("C1orf") && !py_isupper("123"));
    }
}
