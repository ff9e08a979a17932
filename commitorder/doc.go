// Package commitorder decides which commit wins each epoch of a group that
// has no server to order its commits.
package commitorder
