package sources

import (
	"strings"
	"testing"
)

// The file decoders take untrusted bytes: whatever a file holds, reading it
// gives rows, dead letters or an error naming the file; never a panic or
// leaked memory (openFile's allocator is checked). `make fuzz-short` runs
// these briefly; their seeds and any crashers found (testdata/fuzz) run
// with the other tests.

func fuzzFile(f *testing.F, format string, seeds ...[]byte) {
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		schema := columnarSchema
		if format == "json" || format == "csv" {
			schema = allTypes
		}
		_, err := drain(t, openFile(t, checkedAlloc(t), schema, format, string(data), &recorder{}), 0)
		if err != nil && !strings.Contains(err.Error(), "in."+format) {
			t.Fatalf("error without the file: %v", err)
		}
	})
}

func FuzzJSONFile(f *testing.F) {
	fuzzFile(f, "json",
		[]byte(`{"s":"AAPL","i":1,"b":1200,"d":191.34,"m":191.34,"t":"2024-01-01T00:00:05.000Z","dt":"2024-02-29","ok":true,"iv":60000}`+"\n"),
		[]byte(`{"s":{"k":[1,2]},"m":"12.34565","t":1704067205123}`+"\n"+`{"i":"x"}`+"\n{}\n"),
		[]byte(`{"s":"a\"b\\c\nd\u00e9\ud83d\ude00","\u0069":7}`))
}

func FuzzCSVFile(f *testing.F) {
	fuzzFile(f, "csv",
		[]byte("s,i,b,d,m,t,dt,ok,iv\nAAPL,1,1200,191.34,191.34,2024-01-01T00:00:05Z,2024-02-29,true,60000\n"),
		[]byte("s,i,b,d,m,t,dt,ok,iv\n\"a,\"\"q\"\"\",,x,1e3,-0.5,,,false,\n\"open\n"),
		[]byte(""))
}

func FuzzArrowFile(f *testing.F) {
	recs := columnarBatches(2)
	defer releaseAll(recs)
	fuzzFile(f, "arrow", columnarFile(f, "arrow", recs), columnarFile(f, "arrows", recs))
}

func FuzzParquetFile(f *testing.F) {
	recs := columnarBatches(2)
	defer releaseAll(recs)
	fuzzFile(f, "parquet", columnarFile(f, "parquet", recs))
}
