require "extlists";
if header :is :list "from" ":addrbook:default" {
	keep;
}
