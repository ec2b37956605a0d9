require "extlists";
if address :list :comparator "i;ascii-casemap" "from" ":addrbook:default" {
	keep;
}
