// Command plot draws the time series of bench/peers.sh: instances running
// against time, one line per system, into a PNG. Standard library only, so
// text is a tiny built-in bitmap font.
//
//	plot -o launch.png gdpm=gdpm.csv pm2=pm2.csv supervisord=supervisord.csv raw=raw.csv
//
// Each CSV has a header line and rows "ms,running".
package main

import (
	"bufio"
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"strconv"
	"strings"
)

type series struct {
	name string
	t    []float64 // seconds
	v    []float64
}

func main() {
	out := flag.String("o", "launch.png", "output PNG")
	title := flag.String("title", "instances running vs time since the start command", "title")
	flag.Parse()
	var all []series
	for _, arg := range flag.Args() {
		name, path, ok := strings.Cut(arg, "=")
		if !ok {
			fail(fmt.Errorf("argument %q: want NAME=FILE.csv", arg))
		}
		s, err := read(name, path)
		if err != nil {
			fail(err)
		}
		all = append(all, s)
	}
	if len(all) == 0 {
		fail(fmt.Errorf("usage: plot -o OUT.png NAME=FILE.csv..."))
	}
	img := draw(all, *title)
	f, err := os.Create(*out)
	if err != nil {
		fail(err)
	}
	if err := png.Encode(f, img); err != nil {
		fail(err)
	}
	if err := f.Close(); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "plot:", err)
	os.Exit(1)
}

func read(name, path string) (series, error) {
	f, err := os.Open(path)
	if err != nil {
		return series{}, err
	}
	defer f.Close()
	s := series{name: name}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		a, b, ok := strings.Cut(strings.TrimSpace(sc.Text()), ",")
		ms, err1 := strconv.ParseFloat(a, 64)
		v, err2 := strconv.ParseFloat(b, 64)
		if !ok || err1 != nil || err2 != nil {
			continue // the header, or a torn line
		}
		s.t = append(s.t, ms/1000)
		s.v = append(s.v, v)
	}
	return s, sc.Err()
}

var palette = []color.RGBA{
	{0x1f, 0x77, 0xb4, 0xff}, // blue
	{0xd6, 0x27, 0x28, 0xff}, // red
	{0x2c, 0xa0, 0x2c, 0xff}, // green
	{0x7f, 0x7f, 0x7f, 0xff}, // grey
	{0xff, 0x7f, 0x0e, 0xff}, // orange
	{0x94, 0x67, 0xbd, 0xff}, // purple
}

const (
	width, height = 900, 540
	left, right   = 70, 30
	top, bottom   = 50, 60
)

func draw(all []series, title string) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, width, height))
	fill(img, img.Bounds(), color.RGBA{0xff, 0xff, 0xff, 0xff})
	var tmax, vmax float64
	for _, s := range all {
		for i := range s.t {
			tmax, vmax = max(tmax, s.t[i]), max(vmax, s.v[i])
		}
	}
	tmax, vmax = niceCeil(tmax), niceCeil(vmax)
	pw, ph := float64(width-left-right), float64(height-top-bottom)
	x := func(t float64) int { return left + int(t/tmax*pw) }
	y := func(v float64) int { return height - bottom - int(v/vmax*ph) }

	grid := color.RGBA{0xe0, 0xe0, 0xe0, 0xff}
	black := color.RGBA{0, 0, 0, 0xff}
	for i := 0; i <= 5; i++ {
		t := tmax * float64(i) / 5
		line(img, x(t), y(0), x(t), y(vmax), grid, 1)
		label := strconv.FormatFloat(t, 'f', -1, 64) + "s"
		text(img, x(t)-textWidth(label)/2, y(0)+10, label, black)
		v := vmax * float64(i) / 5
		line(img, x(0), y(v), x(tmax), y(v), grid, 1)
		label = strconv.FormatFloat(v, 'f', 0, 64)
		text(img, left-10-textWidth(label), y(v)-5, label, black)
	}
	line(img, x(0), y(0), x(tmax), y(0), black, 1)
	line(img, x(0), y(0), x(0), y(vmax), black, 1)
	text(img, (width-textWidth(title))/2, 18, title, black)
	text(img, (width-textWidth("seconds"))/2, height-24, "seconds", black)

	for i, s := range all {
		c := palette[i%len(palette)]
		for j := 1; j < len(s.t); j++ {
			// A step plot: the count holds until the next sample.
			line(img, x(s.t[j-1]), y(s.v[j-1]), x(s.t[j]), y(s.v[j-1]), c, 2)
			line(img, x(s.t[j]), y(s.v[j-1]), x(s.t[j]), y(s.v[j]), c, 2)
		}
		lx, ly := width-right-190, top+10+i*22
		fill(img, image.Rect(lx, ly, lx+24, ly+4), c)
		text(img, lx+32, ly-4, s.name, black)
	}
	return img
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := 1.0
	for p*10 <= v {
		p *= 10
	}
	for p > v {
		p /= 10
	}
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

func fill(img *image.RGBA, r image.Rectangle, c color.RGBA) {
	for yy := r.Min.Y; yy < r.Max.Y; yy++ {
		for xx := r.Min.X; xx < r.Max.X; xx++ {
			img.SetRGBA(xx, yy, c)
		}
	}
}

// line draws from (x0,y0) to (x1,y1), Bresenham, w pixels thick.
func line(img *image.RGBA, x0, y0, x1, y1 int, c color.RGBA, w int) {
	dx, dy := abs(x1-x0), -abs(y1-y0)
	sx, sy := sign(x1-x0), sign(y1-y0)
	e := dx + dy
	for {
		fill(img, image.Rect(x0, y0, x0+w, y0+w), c)
		if x0 == x1 && y0 == y1 {
			return
		}
		if e2 := 2 * e; e2 >= dy {
			e += dy
			x0 += sx
		} else {
			e += dx
			y0 += sy
		}
	}
}

func abs(a int) int {
	if a < 0 {
		return -a
	}
	return a
}

func sign(a int) int {
	switch {
	case a < 0:
		return -1
	case a > 0:
		return 1
	}
	return 0
}

// The font: 3x5 glyphs, one string of 15 bits (rows top to bottom) each,
// drawn at scale 2. Unknown characters are blank.
const scale = 2

var glyphs = map[rune]string{
	'0': "111101101101111", '1': "010110010010111", '2': "111001111100111",
	'3': "111001111001111", '4': "101101111001001", '5': "111100111001111",
	'6': "111100111101111", '7': "111001001001001", '8': "111101111101111",
	'9': "111101111001111", '.': "000000000000010", '-': "000000111000000",
	'=': "000111000111000", ':': "000010000010000", '(': "010100100100010",
	')': "010001001001010", '/': "001001010100100", ',': "000000000010100",
	'a': "010101111101101", 'b': "110101110101110", 'c': "011100100100011",
	'd': "110101101101110", 'e': "111100110100111", 'f': "111100110100100",
	'g': "011100101101011", 'h': "101101111101101", 'i': "111010010010111",
	'j': "001001001101010", 'k': "101101110101101", 'l': "100100100100111",
	'm': "101111111101101", 'n': "110101101101101", 'o': "010101101101010",
	'p': "110101110100100", 'q': "010101101110011", 'r': "110101110101101",
	's': "011100010001110", 't': "111010010010010", 'u': "101101101101111",
	'v': "101101101101010", 'w': "101101111111101", 'x': "101101010101101",
	'y': "101101010010010", 'z': "111001010100111",
}

func textWidth(s string) int { return len(s) * 4 * scale }

func text(img *image.RGBA, x, y int, s string, c color.RGBA) {
	for i, r := range strings.ToLower(s) {
		g := glyphs[r]
		for b := 0; b < len(g); b++ {
			if g[b] == '1' {
				px, py := x+(i*4+b%3)*scale, y+(b/3)*scale
				fill(img, image.Rect(px, py, px+scale, py+scale), c)
			}
		}
	}
}
