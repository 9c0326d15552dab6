// Package oracle compares the engine's results with DuckDB's.
package oracle
