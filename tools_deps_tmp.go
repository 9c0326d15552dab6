package ferris

import (
	_ "github.com/twmb/franz-go/pkg/kgo"
	_ "github.com/twmb/franz-go/pkg/kadm"
	_ "github.com/twmb/franz-go/pkg/kfake"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/apache/arrow-go/v18/arrow/flight"
)
