//! readmit's compiled tree scorer. It runs no model code and parses no model file: readmit-core
//! reads and checks the registry's data files (LightGBM's text format, the CatBoost export) and
//! hands this module plain arrays; every index is checked again here, so no input can make it
//! read out of bounds or loop. Each row is scored by walking its trees, without the GIL.
//! The rules are readmit-core's NumPy scorers' (scoring/lightgbm.py, scoring/catboost.py); the tests compare both.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use numpy::ndarray::Array2;
use numpy::{
    IntoPyArray, PyArray1, PyArray2, PyReadonlyArray1, PyReadonlyArray2, PyUntypedArrayMethods,
};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

const CATEGORICAL: i64 = 1;
const DEFAULT_LEFT: i64 = 2;
const MISSING_NONE: i64 = 0;
const MISSING_ZERO: i64 = 1;
const ZERO: f64 = 1e-35; // LightGBM's kZeroThreshold
const BLOCK: usize = 16; // rows scored together, tree after tree

/// A multiplicative hash for the i64 keys (Fx's): std's SipHash resists flooding, which keys
/// read from the model's own files need not, at several times the cost of a lookup.
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(b as u64);
        }
    }
    fn write_i64(&mut self, v: i64) {
        self.write_u64(v as u64);
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

type KeyMap<V> = HashMap<i64, V, BuildHasherDefault<KeyHasher>>;

fn bad(what: &str) -> PyErr {
    PyValueError::new_err(format!("compiled scorer: {what}"))
}

fn rows<'a>(x: &'a PyReadonlyArray2<'_, f64>, width: usize) -> PyResult<(&'a [f64], usize)> {
    let shape = x.shape();
    if shape[1] != width {
        return Err(bad(&format!("expected rows of {width} features")));
    }
    let data = x
        .as_slice()
        .map_err(|_| bad("the feature matrix must be C-contiguous"))?;
    Ok((data, shape[0]))
}

fn index(values: &[i64], below: usize, what: &str) -> PyResult<Vec<usize>> {
    values
        .iter()
        .map(|&v| {
            if v >= 0 && (v as usize) < below {
                Ok(v as usize)
            } else {
                Err(bad(what))
            }
        })
        .collect()
}

/// One split, packed: a tree's nodes sit together in cache.
#[derive(Clone, Copy)]
struct Node {
    threshold: f64, // clipped to the finite range, as an infinite value is
    feature: u32,
    words_start: u32, // a categorical node's bitset in `words`
    words_len: u32,
    decision: u8,
    // a child >= 0 is a node of the same tree, < 0 the leaf !child
    left: i32,
    right: i32,
}

/// LightGBM's trees: nodes of all trees in one array, tree after tree.
#[pyclass(frozen)]
struct Forest {
    n_features: usize,
    nodes: Vec<Node>,
    words: Vec<u32>,
    tree_nodes: Vec<(usize, usize)>,  // (first node, node count)
    tree_leaves: Vec<(usize, usize)>, // (first leaf, leaf count)
    leaf_value: Vec<f64>,
    // per node: the change of value to its left and its right child (explanations)
    changes: Vec<(f64, f64)>,
}

#[pymethods]
impl Forest {
    #[new]
    #[allow(clippy::too_many_arguments)]
    fn new(
        n_features: usize,
        feature: Vec<i64>,
        threshold: Vec<f64>,
        decision: Vec<i64>,
        left: Vec<i64>,
        right: Vec<i64>,
        words_start: Vec<i64>,
        words_len: Vec<i64>,
        words: Vec<u32>,
        tree_sizes: Vec<(i64, i64)>,
        leaf_value: Vec<f64>,
        changes: Vec<(f64, f64)>,
    ) -> PyResult<Self> {
        let n = feature.len();
        if changes.len() != n {
            return Err(bad("node arrays differ in length"));
        }
        if [
            threshold.len(),
            decision.len(),
            left.len(),
            right.len(),
            words_start.len(),
            words_len.len(),
        ]
        .iter()
        .any(|&l| l != n)
        {
            return Err(bad("node arrays differ in length"));
        }
        let feature = index(&feature, n_features, "a split feature is out of range")?;
        let words_start = index(&words_start, words.len() + 1, "a bitset is out of range")?;
        let words_len = index(&words_len, words.len() + 1, "a bitset is out of range")?;
        if words_start
            .iter()
            .zip(&words_len)
            .any(|(s, l)| s + l > words.len())
        {
            return Err(bad("a bitset runs past the words"));
        }
        let (mut tree_nodes, mut tree_leaves) = (Vec::new(), Vec::new());
        let (mut node, mut leaf) = (0usize, 0usize);
        for &(nodes, leaves) in &tree_sizes {
            if nodes < 0 || leaves != nodes + 1 {
                return Err(bad("a tree has n nodes and n + 1 leaves"));
            }
            let (nodes, leaves) = (nodes as usize, leaves as usize);
            tree_nodes.push((node, nodes));
            tree_leaves.push((leaf, leaves));
            node += nodes;
            leaf += leaves;
        }
        if node != n || leaf != leaf_value.len() {
            return Err(bad("the trees' sizes do not add up to the arrays"));
        }
        for (t, &(first, count)) in tree_nodes.iter().enumerate() {
            let leaves = tree_leaves[t].1 as i64;
            for i in first..first + count {
                for child in [left[i], right[i]] {
                    if child >= count as i64 || (child < 0 && !child >= leaves) {
                        return Err(bad("a child is out of its tree"));
                    }
                }
            }
        }
        if !(0..16).contains(&decision.iter().copied().max().unwrap_or(0))
            || words.len() > u32::MAX as usize
        {
            return Err(bad("unknown decision type"));
        }
        let nodes = (0..n)
            .map(|i| Node {
                threshold: threshold[i].clamp(-f64::MAX, f64::MAX),
                feature: feature[i] as u32,
                words_start: words_start[i] as u32,
                words_len: words_len[i] as u32,
                decision: decision[i] as u8,
                left: left[i] as i32,
                right: right[i] as i32,
            })
            .collect();
        Ok(Forest {
            n_features,
            nodes,
            words,
            tree_nodes,
            tree_leaves,
            leaf_value,
            changes,
        })
    }

    /// The summed leaf values of each row (LightGBM's raw score before the sigmoid's scale).
    fn raw<'py>(
        &self,
        py: Python<'py>,
        x: PyReadonlyArray2<'py, f64>,
    ) -> PyResult<Bound<'py, PyArray1<f64>>> {
        let (data, n) = rows(&x, self.n_features)?;
        let nf = self.n_features;
        let out: Vec<f64> = py.detach(|| {
            // tree after tree over a block of rows: the tree's nodes stay in cache, and the
            // rows' walks overlap; each row still adds its trees in order
            let mut out = vec![0.0; n];
            for (block, sums) in data.chunks(nf * BLOCK).zip(out.chunks_mut(BLOCK)) {
                for t in 0..self.tree_nodes.len() {
                    for (row, sum) in block.chunks_exact(nf).zip(sums.iter_mut()) {
                        *sum += self.tree(t, row, &mut |_, _| {});
                    }
                }
            }
            out
        });
        Ok(out.into_pyarray(py))
    }

    /// Rows x features: the changes of node value along each row's path in every tree, summed
    /// per split feature (readmit-core adds the base and the sigmoid's scale).
    fn contributions<'py>(
        &self,
        py: Python<'py>,
        x: PyReadonlyArray2<'py, f64>,
    ) -> PyResult<Bound<'py, PyArray2<f64>>> {
        let (data, n) = rows(&x, self.n_features)?;
        let nf = self.n_features;
        let out = py.detach(|| {
            let mut out = vec![0.0; n * nf];
            for (row, terms) in data.chunks_exact(nf).zip(out.chunks_exact_mut(nf)) {
                self.walk(row, |node, left| {
                    let (to_left, to_right) = self.changes[node];
                    terms[self.nodes[node].feature as usize] +=
                        if left { to_left } else { to_right };
                });
            }
            out
        });
        Ok(Array2::from_shape_vec((n, nf), out)
            .map_err(|_| bad("shape"))?
            .into_pyarray(py))
    }
}

impl Forest {
    /// The sum of the leaves `row` reaches; `step(node, went_left)` sees each split it passes.
    fn walk(&self, row: &[f64], mut step: impl FnMut(usize, bool)) -> f64 {
        (0..self.tree_nodes.len())
            .map(|t| self.tree(t, row, &mut step))
            .sum()
    }

    /// The value of the leaf `row` reaches in tree `t`.
    fn tree(&self, t: usize, row: &[f64], step: &mut impl FnMut(usize, bool)) -> f64 {
        let (first, count) = self.tree_nodes[t];
        let leaf_first = self.tree_leaves[t].0;
        let mut node = 0usize;
        // at most `count` steps: a path visits each node once (checked by readmit-core)
        for _ in 0..count {
            let i = first + node;
            let n = &self.nodes[i];
            let left = self.left_of(n, row[n.feature as usize]);
            step(i, left);
            let next = if left { n.left } else { n.right };
            if next < 0 {
                return self.leaf_value[leaf_first + (!next) as usize];
            }
            node = next as usize;
        }
        self.leaf_value[leaf_first] // a single-leaf tree (count 0)
    }

    fn left_of(&self, n: &Node, v: f64) -> bool {
        let decision = n.decision as i64;
        if decision & CATEGORICAL != 0 {
            // NaN and negatives go right; int() truncates (-0.5 is category 0)
            let whole = v.trunc();
            if v.is_nan() || whole < 0.0 || whole >= (32 * n.words_len as usize) as f64 {
                return false;
            }
            let code = whole as usize;
            return self.words[n.words_start as usize + code / 32] >> (code % 32) & 1 == 1;
        }
        let missing = (decision >> 2) & 3;
        let default_left = decision & DEFAULT_LEFT != 0;
        let threshold = n.threshold;
        if v.is_nan() {
            // missing type None reads NaN as 0.0; NaN and Zero take the default direction
            return if missing == MISSING_NONE {
                0.0 <= threshold
            } else {
                default_left
            };
        }
        if missing == MISSING_ZERO && v.abs() <= ZERO {
            return default_left;
        }
        v.clamp(-f64::MAX, f64::MAX) <= threshold
    }
}

/// CatBoost's oblivious trees over float borders, one-hot categories and counter statistics
/// (CTRs) of categories and their combinations, as readmit-core's ObliviousTrees indexes them.
#[pyclass(frozen)]
struct Oblivious {
    n_features: usize,
    // category inputs: (feature column, read as the value's hundredths (ICD-9 codes) or floor)
    cat_column: Vec<usize>,
    cat_hundredths: Vec<bool>,
    cat_ids: Vec<KeyMap<i64>>,
    cat_nan_id: Vec<i64>,
    float_column: Vec<usize>,
    // elements of the tables' keys: 0 a category's id, 1 a float above a border, 2 a category
    // equal to an id
    element_kind: Vec<u8>,
    element_input: Vec<usize>,
    element_border: Vec<f64>,
    element_id: Vec<i64>,
    table_width: usize,
    table_element: Vec<usize>,
    table_radix: Vec<i64>,
    table_base: Vec<i64>,
    table_largest: Vec<f64>,
    // per table, its keys' slots: a small table's map stays in cache
    slot: Vec<KeyMap<usize>>,
    positives: Vec<f64>,
    counts: Vec<f64>,
    ctr_table: Vec<usize>,
    ctr_borders: Vec<bool>,
    ctr_numerator: Vec<f64>,
    ctr_denominator: Vec<f64>,
    ctr_shift: Vec<f64>,
    ctr_scale: Vec<f64>,
    // binary tests: 0 float input > border, 1 category input == id, 2 CTR > border
    test_kind: Vec<u8>,
    test_input: Vec<usize>,
    test_border: Vec<f64>,
    test_id: Vec<i64>,
    depth: usize,
    splits: Vec<usize>, // trees x depth; len(tests) is the padding test (always 0)
    leaf_width: usize,
    leaf_value: Vec<f64>,
    scale: f64,
    bias: f64,
    // node values per depth 0..=model_depth, each level trees x 2^d (explanations)
    model_depth: usize,
    node_values: Vec<f64>,
}

#[pymethods]
impl Oblivious {
    #[new]
    #[allow(clippy::too_many_arguments)]
    fn new(
        n_features: usize,
        categories: Vec<(i64, bool, Vec<(i64, i64)>, i64)>,
        float_columns: Vec<i64>,
        elements: Vec<(u8, i64, f64, i64)>,
        table_element: PyReadonlyArray2<'_, i64>,
        table_radix: PyReadonlyArray2<'_, i64>,
        table_base: Vec<i64>,
        table_largest: Vec<f64>,
        sorted_keys: PyReadonlyArray1<'_, i64>,
        positives: PyReadonlyArray1<'_, f64>,
        counts: PyReadonlyArray1<'_, f64>,
        ctrs: Vec<(i64, bool, f64, f64, f64, f64)>,
        tests: Vec<(u8, i64, f64, i64)>,
        splits: PyReadonlyArray2<'_, i64>,
        leaf_value: PyReadonlyArray2<'_, f64>,
        scale: f64,
        bias: f64,
        model_depth: usize,
        node_values: PyReadonlyArray1<'_, f64>,
    ) -> PyResult<Self> {
        let slice_i = |a: &PyReadonlyArray2<'_, i64>| {
            a.as_slice()
                .map(|s| s.to_vec())
                .map_err(|_| bad("arrays must be C-contiguous"))
        };
        let cat_column = index(
            &categories.iter().map(|c| c.0).collect::<Vec<_>>(),
            n_features,
            "a category column is out of range",
        )?;
        let float_column = index(&float_columns, n_features, "a float column is out of range")?;
        let n_tables = table_base.len();
        let shape = table_element.shape();
        if shape[0] != n_tables || table_radix.shape() != shape || table_largest.len() != n_tables {
            return Err(bad("table arrays differ in shape"));
        }
        let mut element_kind = Vec::new();
        let (mut element_input, mut element_border, mut element_id) =
            (Vec::new(), Vec::new(), Vec::new());
        for &(kind, input, border, id) in &elements {
            let below = if kind == 1 {
                float_column.len()
            } else {
                categories.len()
            };
            if kind > 2 || input < 0 || input as usize >= below {
                return Err(bad("an element reads an unknown input"));
            }
            element_kind.push(kind);
            element_input.push(input as usize);
            element_border.push(border);
            element_id.push(id);
        }
        let table_element_v = index(
            &slice_i(&table_element)?,
            elements.len().max(1),
            "a table reads an unknown element",
        )?;
        let sorted = sorted_keys
            .as_slice()
            .map_err(|_| bad("arrays must be C-contiguous"))?;
        let positives = positives
            .as_slice()
            .map_err(|_| bad("arrays must be C-contiguous"))?
            .to_vec();
        let counts = counts
            .as_slice()
            .map_err(|_| bad("arrays must be C-contiguous"))?
            .to_vec();
        if positives.len() != sorted.len() + 1 || counts.len() != sorted.len() + 1 {
            return Err(bad(
                "positives and counts hold one more value than the keys",
            ));
        }
        // a key belongs to the last table whose base is at most the key (bases ascend)
        if table_base.windows(2).any(|w| w[0] > w[1]) {
            return Err(bad("the tables' bases must ascend"));
        }
        let mut slot: Vec<KeyMap<usize>> = vec![KeyMap::default(); n_tables];
        for (i, &k) in sorted.iter().enumerate() {
            let t = table_base.partition_point(|&b| b <= k);
            if t == 0 {
                return Err(bad("a key lies below every table"));
            }
            slot[t - 1].insert(k, i);
        }
        let mut ctr = (
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
        );
        for &(table, borders, numerator, denominator, shift, scale) in &ctrs {
            if table < 0 || table as usize >= n_tables {
                return Err(bad("a CTR reads an unknown table"));
            }
            ctr.0.push(table as usize);
            ctr.1.push(borders);
            ctr.2.push(numerator);
            ctr.3.push(denominator);
            ctr.4.push(shift);
            ctr.5.push(scale);
        }
        let mut test = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for &(kind, input, border, id) in &tests {
            let below = match kind {
                0 => float_column.len(),
                1 => categories.len(),
                2 => ctrs.len(),
                _ => 0,
            };
            if input < 0 || input as usize >= below {
                return Err(bad("a test reads an unknown input"));
            }
            test.0.push(kind);
            test.1.push(input as usize);
            test.2.push(border);
            test.3.push(id);
        }
        let depth = splits.shape()[1];
        let leaf_width = leaf_value.shape()[1];
        let n_trees = splits.shape()[0];
        if n_trees != leaf_value.shape()[0] || depth == 0 || depth >= 31 || model_depth > depth {
            return Err(bad("trees' splits and leaves differ in shape"));
        }
        let node_values = node_values
            .as_slice()
            .map_err(|_| bad("arrays must be C-contiguous"))?
            .to_vec();
        if node_values.len() != n_trees * ((1 << (model_depth + 1)) - 1)
            || leaf_width < 1 << model_depth
        {
            return Err(bad("node values do not fit the trees"));
        }
        let splits = index(
            &slice_i(&splits)?,
            tests.len() + 1,
            "a tree splits on an unknown test",
        )?;
        // the largest leaf a tree can reach (the padding test is always 0) must exist
        for tree in splits.chunks_exact(depth.max(1)) {
            let reach: usize = tree
                .iter()
                .enumerate()
                .filter(|(_, &s)| s < tests.len())
                .map(|(d, _)| 1 << d)
                .sum();
            if reach >= leaf_width {
                return Err(bad("a tree has fewer leaves than its splits reach"));
            }
        }
        let leaf_value = leaf_value
            .as_slice()
            .map_err(|_| bad("arrays must be C-contiguous"))?
            .to_vec();
        Ok(Oblivious {
            n_features,
            cat_column,
            cat_hundredths: categories.iter().map(|c| c.1).collect(),
            cat_ids: categories
                .iter()
                .map(|c| c.2.iter().copied().collect::<KeyMap<i64>>())
                .collect(),
            cat_nan_id: categories.iter().map(|c| c.3).collect(),
            float_column,
            element_kind,
            element_input,
            element_border,
            element_id,
            table_width: shape[1],
            table_element: table_element_v,
            table_radix: slice_i(&table_radix)?,
            table_base,
            table_largest,
            slot,
            positives,
            counts,
            ctr_table: ctr.0,
            ctr_borders: ctr.1,
            ctr_numerator: ctr.2,
            ctr_denominator: ctr.3,
            ctr_shift: ctr.4,
            ctr_scale: ctr.5,
            test_kind: test.0,
            test_input: test.1,
            test_border: test.2,
            test_id: test.3,
            depth,
            splits,
            leaf_width,
            leaf_value,
            scale,
            bias,
            model_depth,
            node_values,
        })
    }

    /// Each row's log-odds (CatBoost's RawFormulaVal).
    fn raw<'py>(
        &self,
        py: Python<'py>,
        x: PyReadonlyArray2<'py, f64>,
    ) -> PyResult<Bound<'py, PyArray1<f64>>> {
        let (data, _) = rows(&x, self.n_features)?;
        let out: Vec<f64> = py.detach(|| {
            let mut work = Work::new(self);
            data.chunks_exact(self.n_features)
                .map(|row| self.score(row, &mut work))
                .collect()
        });
        Ok(out.into_pyarray(py))
    }

    /// Rows x (tests + 1): per test, the changes of node value along each row's paths
    /// (readmit-core shares them among the columns each test reads).
    fn test_changes<'py>(
        &self,
        py: Python<'py>,
        x: PyReadonlyArray2<'py, f64>,
    ) -> PyResult<Bound<'py, PyArray2<f64>>> {
        let (data, n) = rows(&x, self.n_features)?;
        let width = self.test_kind.len() + 1;
        let out = py.detach(|| {
            let mut work = Work::new(self);
            let mut out = vec![0.0; n * width];
            for (row, changes) in data
                .chunks_exact(self.n_features)
                .zip(out.chunks_exact_mut(width))
            {
                self.test_changes_of(row, &mut work, changes);
            }
            out
        });
        Ok(Array2::from_shape_vec((n, width), out)
            .map_err(|_| bad("shape"))?
            .into_pyarray(py))
    }
}

/// One row's intermediate values, reused from row to row.
struct Work {
    ids: Vec<i64>,
    values: Vec<i64>,
    slots: Vec<usize>,
    ctr: Vec<f64>,
    bits: Vec<bool>,
}

impl Work {
    fn new(m: &Oblivious) -> Self {
        Work {
            ids: vec![0; m.cat_column.len()],
            values: vec![0; m.element_kind.len().max(1)],
            slots: vec![0; m.table_base.len()],
            ctr: vec![0.0; m.ctr_table.len()],
            bits: vec![false; m.test_kind.len() + 1],
        }
    }
}

impl Oblivious {
    fn leaf(&self, t: usize, bits: &[bool]) -> usize {
        let splits = &self.splits[t * self.depth..(t + 1) * self.depth];
        splits
            .iter()
            .enumerate()
            .map(|(d, &s)| (bits[s] as usize) << d)
            .sum()
    }

    fn score(&self, row: &[f64], w: &mut Work) -> f64 {
        self.tests(row, w);
        let mut total = 0.0;
        for t in 0..self.splits.len() / self.depth {
            total += self.leaf_value[t * self.leaf_width + self.leaf(t, &w.bits)];
        }
        self.scale * total + self.bias
    }

    /// Per test, the changes of node value where the row's path passes it (rows x tests + 1).
    fn test_changes_of(&self, row: &[f64], w: &mut Work, out: &mut [f64]) {
        self.tests(row, w);
        let n_trees = self.splits.len() / self.depth;
        for t in 0..n_trees {
            let leaf = self.leaf(t, &w.bits);
            let mut value = self.node_values[t]; // depth 0: the root
            for d in 0..self.model_depth {
                let level = n_trees * ((1 << (d + 1)) - 1) + t * (1 << (d + 1));
                let next = self.node_values[level + (leaf & ((1 << (d + 1)) - 1))];
                out[self.splits[t * self.depth + d]] += next - value;
                value = next;
            }
        }
    }

    /// Fills `w.bits`: every binary test's result for `row` (the last: padding, always 0).
    fn tests(&self, row: &[f64], w: &mut Work) {
        for (i, &column) in self.cat_column.iter().enumerate() {
            let v = row[column];
            w.ids[i] = if v.is_nan() {
                self.cat_nan_id[i]
            } else {
                // the key's number: a code or category is its floor, an ICD-9 code its hundredths
                let key = if self.cat_hundredths[i] {
                    (v * 100.0).round()
                } else {
                    v.floor()
                };
                *self.cat_ids[i].get(&(key as i64)).unwrap_or(&0)
            };
        }
        for e in 0..self.element_kind.len() {
            let input = self.element_input[e];
            w.values[e] = match self.element_kind[e] {
                0 => w.ids[input],
                1 => (row[self.float_column[input]] > self.element_border[e]) as i64,
                _ => (w.ids[input] == self.element_id[e]) as i64,
            };
        }
        let missing = self.positives.len() - 1; // a key not found reads the zero counts
        for t in 0..self.table_base.len() {
            let mut key = self.table_base[t];
            for d in 0..self.table_width {
                let at = t * self.table_width + d;
                key += w.values[self.table_element[at]] * self.table_radix[at];
            }
            w.slots[t] = *self.slot[t].get(&key).unwrap_or(&missing);
        }
        for c in 0..self.ctr_table.len() {
            let t = self.ctr_table[c];
            let s = w.slots[t];
            let (positives, counts) = (self.positives[s], self.counts[s]);
            let value = if self.ctr_borders[c] {
                (positives + self.ctr_numerator[c]) / (counts + self.ctr_denominator[c])
            } else {
                // Counter: the value's frequency, relative to the table's most frequent
                (counts + self.ctr_numerator[c]) / (self.table_largest[t] + self.ctr_denominator[c])
            };
            w.ctr[c] = (value + self.ctr_shift[c]) * self.ctr_scale[c];
        }
        for b in 0..self.test_kind.len() {
            let input = self.test_input[b];
            w.bits[b] = match self.test_kind[b] {
                0 => row[self.float_column[input]] > self.test_border[b],
                1 => w.ids[input] == self.test_id[b],
                _ => w.ctr[input] > self.test_border[b],
            };
        }
    }
}

#[pymodule]
fn readmit_scorer(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Forest>()?;
    m.add_class::<Oblivious>()?;
    Ok(())
}
