# SPDX-License-Identifier: GPL-2.0
# Bar chart of the ratios rust_loop / loop.c written by bench/report.py.
#   gnuplot -e "datafile='ratios.dat'; outfile='ratios.png'" bench/ratios.gp
set terminal pngcairo size 1400,700 font ",10"
set output outfile
set title "rust_loop / loop.c (median; whiskers: paired min–max over rounds; ×: goal)\nUnder TCG only these ratios mean anything, not absolute figures" noenhanced
set ylabel "ratio (higher is better for rust_loop)" noenhanced
set style fill solid 0.6 border -1
set boxwidth 0.7
set grid ytics
set yrange [0:*]
# Room above the tallest bar or goal.
set offsets 0, 0, 0.3, 0
set xtics rotate by -40 noenhanced
set key top left
# The parity line.
set arrow from graph 0, first 1 to graph 1, first 1 nohead dashtype 2 linewidth 2
plot datafile using 0:2:xtic(1) with boxes linecolor rgb "#4a7ab5" title "ratio", \
     '' using 0:2:3:4 with yerrorbars linecolor rgb "black" pointtype 0 notitle, \
     '' using 0:5 with points pointtype 2 pointsize 2 linecolor rgb "#c03030" title "goal", \
     '' using 0:(0):(sprintf("%.2f", $2)) with labels offset 0, 0.7 notitle
